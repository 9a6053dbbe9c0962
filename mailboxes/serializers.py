from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mailboxes import selectors
from mailboxes.models import AccessToken, Mailbox, Message
from mailboxes.services import Stored, retention_days
from mns_client.protocol.codecs import from_hex, parse_public_key, public_key_hex, to_hex
from mns_client.protocol.errors import CodecError
from mns_client.protocol.mailbox import DELIVERY_ID_RE, MailboxMessageInvalid, address_text

KEY_HELP = "A Maxima identity key: 0x + upper-case hex of the 162-byte RSA-1024 DER."
ADDRESS_HELP = "The owner's Maxima address, Mx…@host:port or MAX#…: forwards and the access token go there."


@extend_schema_field(OpenApiTypes.STR)
class HexField(serializers.Field):
    """``0x`` + hex on the wire, bytes inside. (Not a CharField: its per-character validators would walk every
    character of a 120 KiB ciphertext, and ``from_hex`` admits nothing but hex digits anyway.)"""

    def to_internal_value(self, data: Any) -> bytes:
        try:
            return from_hex(data)
        except CodecError:
            raise serializers.ValidationError("Expected 0x followed by hex digits.") from None

    def to_representation(self, value: bytes) -> str:
        return to_hex(bytes(value))


class AddressField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        try:
            return address_text(super().to_internal_value(data))
        except MailboxMessageInvalid:
            raise serializers.ValidationError("Not a Maxima address (Mx…@host:port or MAX#…).") from None


class KeyField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        try:
            return public_key_hex(parse_public_key(super().to_internal_value(data)))
        except CodecError:
            raise serializers.ValidationError("Not a Maxima RSA-1024 public key.") from None


# ------------------------------------------------------------------------------------------------ registration


# ----------------------------------------------------------------------------------------------------- mailbox


class QuotaSerializer(serializers.Serializer):
    max_messages = serializers.IntegerField()
    max_bytes = serializers.IntegerField()
    messages = serializers.IntegerField()
    bytes = serializers.IntegerField()


class MailboxSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="record.name")
    owner = serializers.CharField(source="owner_key", help_text=KEY_HELP)
    quota = serializers.SerializerMethodField()
    retention_days = serializers.SerializerMethodField(help_text="How long new messages are kept, in days.")
    retention_days_chosen = serializers.IntegerField(
        source="retention_days", allow_null=True, help_text="The owner's choice; null: the gateway's."
    )
    blocked = serializers.SerializerMethodField()
    allowed = serializers.SerializerMethodField()

    class Meta:
        model = Mailbox
        fields = [
            "name",
            "owner",
            "address",
            "quota",
            "retention_days",
            "retention_days_chosen",
            "auto_forward",
            "delete_forwarded",
            "blocked",
            "allowed",
            "created_at",
        ]

    @extend_schema_field(QuotaSerializer)
    def get_quota(self, mailbox: Mailbox) -> dict[str, int]:
        return QuotaSerializer(selectors.mailbox_usage(mailbox_id=mailbox.id)).data

    def get_retention_days(self, mailbox: Mailbox) -> int:
        return retention_days(mailbox)

    def get_blocked(self, mailbox: Mailbox) -> list[str]:
        return selectors.sender_lists(mailbox=mailbox)["blocked"]

    def get_allowed(self, mailbox: Mailbox) -> list[str]:
        return selectors.sender_lists(mailbox=mailbox)["allowed"]


class MailboxSettingsSerializer(serializers.Serializer):
    """Only the settings given change; ``blocked`` and ``allowed`` replace the whole list."""

    address = AddressField(required=False, help_text=ADDRESS_HELP)
    retention_days = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    auto_forward = serializers.BooleanField(required=False)
    delete_forwarded = serializers.BooleanField(required=False)
    blocked = serializers.ListField(child=KeyField(), required=False, max_length=100_000)
    allowed = serializers.ListField(child=KeyField(), required=False, max_length=100_000)


# ---------------------------------------------------------------------------------------------------- messages


class MessageMetaSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="uid")
    sender = serializers.CharField(source="sender_key", help_text=KEY_HELP + " Empty for an anonymous REST sender.")
    sender_verified = serializers.BooleanField(help_text="Maxima verified the sender; false for REST submissions.")

    class Meta:
        model = Message
        fields = [
            "id",
            "sender",
            "sender_verified",
            "scheme",
            "size",
            "received_at",
            "expires_at",
            "state",
            "forwarded_at",
        ]

    _zone: tzinfo | None = None  # the current time zone, read by the first message this serializer represents

    def to_representation(self, message: Message) -> dict[str, Any]:
        """What the declared fields give, built directly: a mailbox list is a page of these, and DRF's field
        machinery (a deep copy of every field per message) was most of a list's time in the worker."""
        zone = self._zone
        if zone is None:  # once per serializer, which a page shares: a twentieth of a list's time in the worker
            zone = self._zone = timezone.get_current_timezone()
        return {
            "id": message.uid,
            "sender": message.sender_key,
            "sender_verified": message.sender_verified,
            "scheme": message.scheme,
            "size": message.size,
            "received_at": _datetime(message.received_at, zone),
            "expires_at": _datetime(message.expires_at, zone),
            "state": message.state,
            "forwarded_at": _datetime(message.forwarded_at, zone),
        }


_DATETIME = serializers.DateTimeField()


def _datetime(value: Any, zone: tzinfo) -> str | None:
    """``DateTimeField().to_representation(value)`` with the current time zone read once by the caller: an aware
    value (every stored one) in ``zone``, ISO 8601 with ``Z`` for UTC; anything else as DRF does it."""
    if value is None:
        return None
    if not isinstance(value, datetime) or timezone.is_naive(value):
        return _DATETIME.to_representation(value)
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class MessageSerializer(MessageMetaSerializer):
    ciphertext = HexField(help_text="0x + hex of the envelope, exactly as the sender made it.")

    class Meta(MessageMetaSerializer.Meta):
        fields = [*MessageMetaSerializer.Meta.fields, "ciphertext"]

    def to_representation(self, message: Message) -> dict[str, Any]:
        return {**super().to_representation(message), "ciphertext": to_hex(bytes(message.ciphertext))}


class AckSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.CharField(max_length=32), min_length=1, max_length=500)


class AckedSerializer(serializers.Serializer):
    deleted = serializers.IntegerField(help_text="How many of the listed messages were deleted now.")


class ForwardSerializer(serializers.Serializer):
    delete_after = serializers.BooleanField(default=False, help_text="Delete each message once it is forwarded.")


class ForwardSummarySerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    retried = serializers.IntegerField()
    in_flight = serializers.IntegerField()


class AccessTokenSerializer(serializers.ModelSerializer):
    token = HexField(source="blob", help_text="maxencrypt of {token_id, secret} to the owner's key: maxdecrypt it.")

    class Meta:
        model = AccessToken
        fields = ["name", "token_id", "token", "created_at"]


# ------------------------------------------------------------------------------------------------ submissions


class SubmitSerializer(serializers.Serializer):
    """A delivery over REST: the same fields as the Maxima ``deliver`` message, ``to`` being the URL's name."""

    id = serializers.RegexField(
        rf"\A{DELIVERY_ID_RE.pattern}\Z", help_text="The sender's own id: 16-64 of A-Z a-z 0-9 _ -."
    )
    scheme = serializers.CharField(max_length=64)
    ciphertext = HexField(help_text="0x + hex of the envelope.")
    sender = KeyField(required=False, help_text=KEY_HELP + " Claimed, not verified.")

    def validate_ciphertext(self, value: bytes) -> bytes:
        if not value:
            raise serializers.ValidationError("Must not be empty.")
        return value


class StoredSerializer(serializers.Serializer):
    """The REST counterpart of a ``stored`` receipt."""

    id = serializers.CharField(source="message.delivery_id")
    status = serializers.SerializerMethodField()
    message_id = serializers.CharField(source="message.uid")

    def get_status(self, stored: Stored) -> str:
        return "stored"


class ReceiptQuerySerializer(serializers.Serializer):
    sender = KeyField(help_text=KEY_HELP + " The delivering node's identity key: the receipt's addressee.")


class ReceiptSerializer(serializers.Serializer):
    """A receipt the gateway queued for the sender's node, and whether its node has delivered it."""

    id = serializers.CharField(source="receipt.id", help_text="The sender's delivery id.")
    status = serializers.ChoiceField(["stored", "refused"], source="receipt.status")
    message_id = serializers.CharField(source="receipt.message_id", required=False, help_text="With stored.")
    reason = serializers.CharField(source="receipt.reason", required=False, help_text="With refused.")
    detail = serializers.CharField(source="receipt.detail", required=False, help_text="With refused: in words.")
    sent = serializers.BooleanField(help_text="The gateway's node has delivered the receipt to the sender's node.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return {key: value for key, value in super().to_representation(instance).items() if value is not None}
