from typing import Any

from rest_framework import serializers

from mns_client.protocol.codecs import parse_public_key, public_key_hex
from mns_client.protocol.errors import CodecError
from mns_client.protocol.statements import OPS, SignedStatement
from registry.models import NameRecord, StatementRecord

KEY_HELP = "A Maxima identity key: 0x + upper-case hex of the 162-byte RSA-1024 DER."


class NameStatementSerializer(serializers.Serializer):
    """The fields of a name statement (docs/protocol.md, "Name statements"); parsed strictly by mns_client."""

    v = serializers.IntegerField(help_text="1")
    op = serializers.ChoiceField(list(OPS))
    name = serializers.CharField(help_text="The name in normal form.")
    owner = serializers.CharField(help_text=KEY_HELP)
    box_key = serializers.CharField(required=False, help_text="0x + 64 upper-case hex digits (X25519); not in release.")
    payment_address = serializers.CharField(required=False, help_text="Mx… or 0x + 64 hex digits; optional.")
    data = serializers.DictField(
        required=False, help_text="The owner's free data record: a JSON object of at most 1024 canonical bytes."
    )
    to = serializers.CharField(required=False, help_text="transfer only: the key the name is offered to.")
    expires_at = serializers.IntegerField(required=False, help_text="transfer only: Unix ms, the offer's deadline.")
    accepts = serializers.IntegerField(required=False, help_text="accept only: the seq of the transfer accepted.")
    seq = serializers.IntegerField(min_value=1)
    issued_at = serializers.IntegerField(min_value=0, help_text="Unix time in milliseconds.")
    gateway = serializers.CharField(help_text="The home gateway's Maxima identity key.")


class SignedStatementSerializer(serializers.Serializer):
    """``{"statement": {…}, "signature": "0x…"}``, parsed into a ``SignedStatement``.

    Parsing is ``SignedStatement.from_dict`` on the raw JSON, never DRF's field coercion: coercing ``"1"`` to ``1``
    would change the signed bytes. A malformed statement raises ``StatementInvalid`` (400 ``statement_invalid``).
    """

    statement = NameStatementSerializer()
    signature = serializers.CharField(help_text="The owner's maxsign signature: 0x + 256 upper-case hex digits.")

    def to_internal_value(self, data: Any) -> SignedStatement:
        return SignedStatement.from_dict(data)


class TransferOfferSerializer(serializers.Serializer):
    to = serializers.CharField(help_text="The key the name is offered to.")
    expires_at = serializers.IntegerField(help_text="Unix ms; the offer cannot be accepted after it.")
    offer = serializers.IntegerField(help_text="The offer's seq: what the new key's accept names in accepts.")


class OnChainSerializer(serializers.Serializer):
    """The name as Minima's MNS holds it on chain (docs/protocol.md, "Names on chain")."""

    holder = serializers.CharField(help_text="The wallet key (0x, 32 bytes) that holds the name on chain now.")
    registered_block = serializers.IntegerField(help_text="The block of the first valid coin.")
    updated_block = serializers.IntegerField(help_text="The block of the last coin that changed the record.")
    data = serializers.CharField(help_text="The MNS record's data (often JSON), as on chain.")
    agrees = serializers.BooleanField(
        help_text="True when this name's owner here proved control of the on-chain holder key when registering."
    )


class NameRecordSerializer(serializers.ModelSerializer):
    """A name's current record. ``statement`` and ``signature`` together are the wire form of the signed statement,
    so a client verifies the binding itself (``SignedStatement.from_dict({...}).verify()``)."""

    owner = serializers.CharField(source="owner_key", allow_null=True, help_text=KEY_HELP + " Null once released.")
    box_key = serializers.CharField(allow_null=True, help_text="The mailbox's X25519 key. Null once released.")
    payment_address = serializers.CharField(allow_null=True, help_text="A Minima address, if the owner gave one.")
    data = serializers.DictField(allow_null=True, help_text="The owner's signed data record, if any.")
    transfer = TransferOfferSerializer(allow_null=True, help_text="The pending offer of the name, if any.")
    gateways = serializers.ListField(child=serializers.CharField(), help_text="Home gateway first.")
    statement = NameStatementSerializer(help_text="The current statement, exactly as the owner signed it.")
    on_chain = OnChainSerializer(
        required=False, help_text="Present only when the name is also registered on chain by Minima's MNS."
    )
    transparency = serializers.DictField(
        required=False,
        read_only=True,
        help_text=(
            'The name in the directory\'s Merkle tree (docs/protocol.md, "Transparency"): {root, statement, proof, '
            "current} against the newest root on chain, or {status: no_root} / {status: not_in_directory, root, "
            "bucket: {entries, top}}."
        ),
    )

    class Meta:
        model = NameRecord
        fields = [
            "name",
            "status",
            "owner",
            "box_key",
            "payment_address",
            "data",
            "transfer",
            "gateways",
            "seq",
            "statement",
            "signature",
            "on_chain",
            "transparency",
        ]

    def to_representation(self, record: NameRecord) -> dict[str, Any]:
        return record_representation(record)


def record_representation(record: NameRecord) -> dict[str, Any]:
    """What ``NameRecordSerializer`` gives, built directly: a lookup is the hottest path of a gateway and
    DRF's field machinery (deep copies of every declared field per instance) was a third of its time.

    ``data`` and ``transfer`` are read from the signed statement itself (the holder's record, the pending offer),
    so they can never say anything the owner did not sign. An expired offer is still shown: its ``expires_at``
    says so, and the record stays the same until a new statement (no answer changes with the clock alone)."""
    statement = record.statement if record.status != NameRecord.Status.RELEASED and record.statement else {}
    return {
        "name": record.name,
        "status": record.status,
        "owner": record.owner_key or None,
        "box_key": record.box_key or None,
        "payment_address": record.payment_address or None,
        "data": statement.get("data"),
        "transfer": _offer(statement),
        "gateways": list(record.gateways),
        "seq": record.seq,
        "statement": record.statement,
        "signature": record.signature or None,
    }


def _offer(statement: dict[str, Any]) -> dict[str, Any] | None:
    if statement.get("op") != "transfer":
        return None
    return {"to": statement["to"], "expires_at": statement["expires_at"], "offer": statement["seq"]}


class StatementEntrySerializer(serializers.ModelSerializer):
    """One statement of a name's history, with when and how this gateway received it."""

    statement = NameStatementSerializer()

    class Meta:
        model = StatementRecord
        fields = ["seq", "statement", "signature", "received_at"]


class AvailabilitySerializer(serializers.Serializer):
    name = serializers.CharField(allow_null=True, help_text="The normal form; null when the input is not a name.")
    available = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True, help_text="The refusal's code, such as name_taken.")
    detail = serializers.CharField(allow_null=True, help_text="The refusal, for a person.")


class OwnerQuerySerializer(serializers.Serializer):
    owner = serializers.CharField(help_text=KEY_HELP + " Mx… is accepted too.")

    def validate_owner(self, value: str) -> str:
        try:
            return public_key_hex(parse_public_key(value))
        except CodecError:
            raise serializers.ValidationError("Not a Maxima RSA-1024 public key.") from None


class OwnedNameSerializer(serializers.ModelSerializer):
    class Meta:
        model = NameRecord
        fields = ["name", "status", "seq"]


class OwnerNamesSerializer(serializers.Serializer):
    owner = serializers.CharField(help_text=KEY_HELP)
    names = OwnedNameSerializer(many=True)
