"""The name registry: one ``NameRecord`` per name, its chain of owner-signed statements, and the staff's audit log.

Two invariants are kept by the database itself, not only by the services' checks, so two concurrent
registrations can never both win:

- a name is one row (``name`` is unique), whatever its status;
- no two *live* records (everything but ``released``) share a confusable skeleton (a conditional unique
  constraint), so ``alice`` and ``a1ice`` can never both be held, by one key or by two.
"""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry import published


class NameRecordQuerySet(models.QuerySet):
    """Bulk writes of records go through ``published.changing`` too (see ``NameRecord.save``)."""

    def update(self, **kwargs: Any) -> int:
        with published.changing(self._names()):
            return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        with published.changing(self._names()):
            return super().delete()

    def _names(self) -> list[str]:
        return list(self.values_list("name", flat=True)) if published.enabled() else []


class NameRecord(models.Model):
    """A name, its current owner-signed statement and the keys that statement binds to it.

    ``statement``/``signature``/``seq`` are the latest statement stored for the name (``None`` for a name that staff
    reserved before anyone registered it). The owner fields (``owner_key``, ``box_key``, ``payment_address``,
    ``gateways``) are the current holder's and are empty while the name is released or reserved; the release
    statement itself stays in ``statement`` and in the history, so the next register must follow it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending (held, waiting for the owner's handshake)"
        ACTIVE = "active"
        SUSPENDED = "suspended"
        RESERVED = "reserved"
        RELEASED = "released"

    LIVE = (Status.PENDING, Status.ACTIVE, Status.SUSPENDED, Status.RESERVED)
    HELD = (Status.PENDING, Status.ACTIVE, Status.SUSPENDED)

    name = models.CharField(max_length=32, unique=True, help_text="The normal form (NFKC, case-folded).")
    skeleton = models.CharField(max_length=32, db_index=True, help_text="The confusable skeleton of the name.")
    bucket = models.PositiveSmallIntegerField(
        null=True, blank=True, db_index=True, help_text="The name's bucket in the directory's Merkle tree (0-4095)."
    )
    status = models.CharField(max_length=16, choices=Status.choices)
    owner_key = models.TextField(blank=True, db_index=True, help_text="The owner's Maxima identity key (0x…).")
    box_key = models.CharField(max_length=66, blank=True, help_text="The mailbox's X25519 public key (0x…).")
    payment_address = models.CharField(max_length=128, blank=True, help_text="A Minima address (Mx… or 0x…).")
    gateways = models.JSONField(
        default=list, blank=True, help_text="Maxima identity keys of the gateways holding the mailbox, home first."
    )
    seq = models.PositiveBigIntegerField(null=True, blank=True, help_text="The seq of the current statement.")
    statement = models.JSONField(null=True, blank=True, help_text="The current statement, as the owner signed it.")
    signature = models.CharField(max_length=258, blank=True, help_text="The owner's maxsign signature (0x…).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(db_index=True)

    objects = NameRecordQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["skeleton"],
                condition=~Q(status="released"),
                name="registry_live_skeleton_unique",
                violation_error_message="A live name already has this skeleton.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "active", "suspended", "reserved", "released"]),
                name="registry_status_known",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["reserved", "released"]) | (~Q(owner_key="") & ~Q(box_key="")),
                name="registry_held_has_keys",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Every change of what a lookup answers passes here (or through ``NameRecordQuerySet``): the one hook
        that keeps the published form (``registry.published``) exact."""
        with published.changing([self.name]):
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        with published.changing([self.name]):
            return super().delete(*args, **kwargs)


class StatementRecord(models.Model):
    """One owner-signed statement of a name's chain, stored only after its signature and succession verified."""

    class Op(models.TextChoices):
        REGISTER = "register"
        UPDATE = "update"
        RELEASE = "release"
        TRANSFER = "transfer"
        ACCEPT = "accept"

    class Source(models.TextChoices):
        API = "api", "REST API"
        MAXIMA = "maxima", "Maxima"
        REPLICATION = "replication", "a peer gateway"

    record = models.ForeignKey(NameRecord, on_delete=models.CASCADE, related_name="statements")
    seq = models.PositiveBigIntegerField()
    op = models.CharField(max_length=16, choices=Op.choices)
    owner_key = models.TextField()
    statement = models.JSONField(help_text="The statement's fields, exactly as signed.")
    signature = models.CharField(max_length=258)
    source = models.CharField(max_length=16, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["record", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["record", "seq"], name="registry_statement_seq_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.op} seq {self.seq}"


class AuditEntry(models.Model):
    """What staff did to a name, who did it, when and why. Written by the services only; never edited."""

    class Action(models.TextChoices):
        RESERVE = "reserve"
        UNRESERVE = "unreserve"
        SUSPEND = "suspend"
        RESTORE = "restore"

    # Kept as text too, so the entry outlives the record (unreserving a never-registered name deletes it).
    record = models.ForeignKey(NameRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit")
    name = models.CharField(max_length=32, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_username = models.CharField(max_length=150)
    reason = models.TextField()
    status_before = models.CharField(max_length=16, blank=True)
    status_after = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="registry_audit_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.name} by {self.actor_username}"
