import threading
from typing import Any

from rest_framework import serializers

from handshake.models import Challenge, Session
from handshake.services import IssuedChallenge
from mns_client.protocol.handshake import APPLICATION, PURPOSES, SECRET_HASH_RE


class ChallengeRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, trim_whitespace=False, help_text="Any spelling: it is normalised.")
    purpose = serializers.ChoiceField(PURPOSES, help_text="What the session will allow.")
    verifier_hash = serializers.RegexField(
        SECRET_HASH_RE,
        help_text="Lower-case hex SHA-256 of the ASCII verifier (43-128 characters of A-Z a-z 0-9 - . _ ~).",
    )


class ChallengeIssuedSerializer(serializers.Serializer):
    """What the client needs to have the owner's node answer: where to send which code, and until when."""

    id = serializers.CharField(source="challenge.id")
    name = serializers.CharField(source="challenge.record.name")
    purpose = serializers.CharField(source="challenge.purpose")
    code = serializers.CharField(help_text="Shown once. The owner's node sends it back over Maxima.")
    gateway_address = serializers.CharField(help_text="The gateway's Maxima address (Mx…@host:port or MAX#…).")
    application = serializers.SerializerMethodField(help_text='Always "mns".')
    expires_at = serializers.DateTimeField(source="challenge.expires_at")

    def get_application(self, issued: IssuedChallenge) -> str:
        return APPLICATION


class ChallengeStatusSerializer(serializers.ModelSerializer):
    """A challenge's state for polling: pending, verified, expired, or failed with a reason."""

    name = serializers.CharField(source="record.name")
    status = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField(
        help_text="Why it failed or expired; claim_open while a register is answered but waits for the MNS "
        "network's claim of the name (status pending); null otherwise."
    )
    attempts_left = serializers.SerializerMethodField()
    session_issued = serializers.SerializerMethodField()

    class Meta:
        model = Challenge
        fields = ["id", "name", "purpose", "status", "reason", "attempts_left", "expires_at", "session_issued"]

    def get_status(self, challenge: Challenge) -> str:
        return challenge.state()

    def get_reason(self, challenge: Challenge) -> str | None:
        state = challenge.state()
        if state == "failed":
            return challenge.failure_reason
        if challenge.awaiting_network:
            return "claim_open"
        return "challenge_expired" if state == "expired" else None

    def get_attempts_left(self, challenge: Challenge) -> int:
        return max(challenge.max_attempts - challenge.attempts, 0)

    def get_session_issued(self, challenge: Challenge) -> bool:
        return challenge.session_issued_at is not None


_status = threading.local()


def challenge_status(challenge: Challenge) -> dict[str, Any]:
    """``ChallengeStatusSerializer``'s representation of ``challenge``, by one serializer kept per thread: a
    ModelSerializer builds its fields for every instance, which cost more than the rest of a poll's answer (issue
    #18). Its representation reads nothing of the serializer but its fields."""
    serializer = getattr(_status, "serializer", None)
    if serializer is None:
        serializer = _status.serializer = ChallengeStatusSerializer()
    return serializer.to_representation(challenge)


class PickupSerializer(serializers.Serializer):
    verifier = serializers.CharField(
        max_length=128, trim_whitespace=False, help_text="The secret behind verifier_hash."
    )


class SessionIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once. Send it as Authorization: MNS-Session <token>.")
    scope = serializers.CharField(source="session.purpose")
    name = serializers.CharField(source="session.record.name")
    expires_at = serializers.DateTimeField(source="session.expires_at")


class SessionSerializer(serializers.ModelSerializer):
    scope = serializers.CharField(source="purpose")
    name = serializers.CharField(source="record.name")

    class Meta:
        model = Session
        fields = ["scope", "name", "created_at", "expires_at"]
