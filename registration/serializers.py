from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import empty

from handshake.serializers import ChallengeIssuedSerializer
from mailboxes.serializers import ADDRESS_HELP, AddressField
from mns_client.protocol.codecs import from_hex
from mns_client.protocol.handshake import SECRET_HASH_RE
from mns_client.protocol.statements import SignedStatement
from registry.serializers import NameStatementSerializer

# A TreeKey signature is about 4 kB (fixture 101): up to 16 kB of bytes is room and a bound.
CHAIN_SIGNATURE_RE = r"\A0x(?:[0-9A-Fa-f]{2}){1,16384}\Z"


class RegisterSerializer(serializers.Serializer):
    """The owner's signed ``register`` statement (name, owner key, box key, payment address?), where the mailbox
    forwards to, and the hash of the verifier that picks up the register session.

    The statement is parsed by ``SignedStatement.from_dict`` on the raw JSON, never coerced (that would change
    the signed bytes): a malformed one is 400 ``statement_invalid``.
    """

    statement = NameStatementSerializer()
    signature = serializers.CharField(help_text="The owner's maxsign signature: 0x + 256 upper-case hex digits.")
    address = AddressField(help_text=ADDRESS_HELP)
    verifier_hash = serializers.RegexField(
        rf"\A{SECRET_HASH_RE.pattern}\Z", help_text="Lower-case hex SHA-256 of the verifier."
    )
    chain_signature = serializers.RegexField(
        CHAIN_SIGNATURE_RE,
        required=False,
        help_text="Only for a name registered on chain by Minima's MNS: the wallet `sign` (0x hex) of the register "
        "statement's canonical bytes by the key that holds the name on chain (docs/protocol.md, Names on chain).",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        values, errors = {}, {}
        for key in ("address", "verifier_hash", "chain_signature"):
            if key == "chain_signature" and key not in data:
                continue
            try:
                values[key] = self.fields[key].run_validation(data.get(key, empty))
            except serializers.ValidationError as exc:
                errors[key] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        signed = SignedStatement.from_dict({"statement": data.get("statement"), "signature": data.get("signature")})
        if "chain_signature" in values:
            values["chain_signature"] = from_hex(values["chain_signature"])
        return {"signed": signed, **values}


class PendingRegistrationSerializer(serializers.Serializer):
    name = serializers.CharField(source="record.name")
    status = serializers.CharField(source="record.status", help_text='"pending" until the owner\'s node answers.')
    handshake = ChallengeIssuedSerializer(source="issued", help_text="What the owner's node must send back.")
