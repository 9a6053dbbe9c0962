"""The handshake (DESIGN §4): challenges, the answers the owner's node sent to them, and the sessions they grant.

No secret is stored: codes, verifiers and tokens are kept as their SHA-256 (``mns_client.protocol.handshake``). The
invariants the database keeps itself, so no race can break them:

- a challenge leaves ``pending`` once, by a conditional UPDATE (verified, or failed), so two answers cannot
  both verify it;
- a challenge grants at most one session (``Session.created_from`` is one-to-one);
- an answer is recorded once per Maxima ``msgid`` (unique), so a message processed twice counts once.
"""

from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone

from mns_client.protocol.handshake import PURPOSES, new_challenge_id
from registry.models import NameRecord

Purpose = models.TextChoices("Purpose", [(purpose.upper(), purpose) for purpose in PURPOSES])


class Challenge(models.Model):
    """One handshake: the code the owner's node must send back, for one name and one purpose.

    ``status`` is what the answers did to it; "expired" is not stored but derived (pending past ``expires_at``),
    so nothing has to run at the expiry for it to be refused.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        FAILED = "failed"

    id = models.CharField(primary_key=True, max_length=64, default=new_challenge_id, editable=False)
    record = models.ForeignKey(NameRecord, on_delete=models.CASCADE, related_name="challenges")
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    owner_key = models.TextField(help_text="The Maxima identity key that must answer (the owner's, at issue time).")
    code_hash = models.CharField(max_length=64, help_text="SHA-256 of the code; the code itself is never stored.")
    verifier_hash = models.CharField(max_length=64, help_text="The client's SHA-256 of its verifier (PKCE-like).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Refused answers counted against the limit.")
    max_attempts = models.PositiveIntegerField()
    client_address = models.GenericIPAddressField(null=True, blank=True, help_text="Who asked for the challenge.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True, help_text="When it was verified or failed.")
    pickup_until = models.DateTimeField(null=True, blank=True, help_text="The session can be picked up until then.")
    session_issued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["record", "status", "expires_at"], name="handshake_open_per_name")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["pending", "verified", "failed"]), name="handshake_status"),
            models.CheckConstraint(condition=Q(purpose__in=list(PURPOSES)), name="handshake_purpose"),
            models.CheckConstraint(
                condition=Q(session_issued_at__isnull=True) | Q(status="verified"), name="handshake_session_if_verified"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.record.name} ({self.state()})"

    @property
    def awaiting_network(self) -> bool:
        """A ``register`` the owner answered while the network's claim of the name is still open: verified, but
        without a pickup window until the registration completes (or failed ``name_taken``/``claim_expired``)."""
        return (
            self.purpose == "register"
            and self.status == self.Status.VERIFIED
            and self.pickup_until is None
            and self.session_issued_at is None
        )

    def state(self, now: datetime | None = None) -> str:
        """pending (also: answered, awaiting the network's claim), verified, failed, or expired (pending past its
        expiry)."""
        if self.status == self.Status.PENDING and self.expires_at <= (now or timezone.now()):
            return "expired"
        if self.awaiting_network:
            return "pending"
        return self.status


class Answer(models.Model):
    """A Maxima message that answered a challenge, and what the gateway made of it (never the code)."""

    class Outcome(models.TextChoices):
        VERIFIED = "verified"
        REFUSED = "refused"

    challenge = models.ForeignKey(Challenge, on_delete=models.CASCADE, related_name="answers")
    msgid = models.CharField(max_length=66, unique=True)
    sender = models.TextField(help_text="The sender's Maxima identity key, as the node verified it.")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=32, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.outcome} {self.reason}".strip()


class Session(models.Model):
    """What a verified challenge grants: a short-lived token for one name and one purpose (its scope).

    Bound to the owner key the challenge was verified with: if the name changes hands, the session is dead.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    record = models.ForeignKey(NameRecord, on_delete=models.CASCADE, related_name="sessions")
    owner_key = models.TextField()
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    created_from = models.OneToOneField(
        Challenge, on_delete=models.SET_NULL, null=True, blank=True, related_name="session"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True, help_text="Staff username, or 'owner'.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(purpose__in=list(PURPOSES)), name="session_purpose")]

    def __str__(self) -> str:
        return f"{self.purpose} session for {self.record.name} ({self.state()})"

    def state(self, now: datetime | None = None) -> str:
        """active, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"
