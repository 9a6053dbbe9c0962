"""The MNS network (DESIGN §5): peers, the per-origin operation log, name claims and the leases peers hold.

The invariants the database keeps itself, so no race can break them:

- an operation is stored once per ``(origin, seq)`` (unique): applying a batch twice stores nothing twice;
- this gateway's own operations are numbered after they commit, by one sequencer at a time holding the
  ``LogHead`` row (``federation.services.op_sequence``): consecutive ``seq`` numbers, no gap, none twice, and a
  number is only ever given to a committed operation, so a peer reading by cursor never skips one;
- a peer holds at most one live lease per confusable skeleton (a conditional unique constraint), so it can never
  ack two owners of one name at once.
"""

import secrets

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform


class Peer(models.Model):
    """Another gateway of the MNS network, managed by staff (admin or ``manage.py peers``)."""

    name = models.SlugField(max_length=64, unique=True)
    identity_key = models.TextField(unique=True, help_text="The peer's Maxima identity key (0x… upper-case hex).")
    address = models.TextField(help_text="MAX#… (permanent) or Mx…@host:port: where its node is reached.")
    permanent = models.BooleanField(default=False, help_text="The address is a permanent MAX# address.")
    api_url = models.URLField(blank=True, help_text="The peer's REST API, e.g. https://gw.example/api/v1/.")
    enabled = models.BooleanField(default=True)
    paused = models.BooleanField(default=False, help_text="Set when the peer sent too many invalid operations.")
    paused_reason = models.TextField(blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    last_heard_at = models.DateTimeField(null=True, blank=True, help_text="Its last verified mns-sync message.")
    # Replication of the peer's own log into ours.
    cursor = models.PositiveBigIntegerField(default=0, help_text="Its ops applied here, without a gap: 1 … cursor.")
    remote_head = models.PositiveBigIntegerField(default=0, help_text="The last seq of its log it told us of.")
    caught_up_at = models.DateTimeField(null=True, blank=True, help_text="When cursor last reached remote_head.")
    last_pull_at = models.DateTimeField(null=True, blank=True)
    # Replication of our log to the peer.
    pushed = models.PositiveBigIntegerField(default=0, help_text="Our ops queued to the peer: 1 … pushed.")
    waiting_seq = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="An op that cannot be applied yet (it follows another origin's op)."
    )
    waiting_since = models.DateTimeField(null=True, blank=True)
    incarnation = models.CharField(max_length=32, blank=True, help_text="Of its log, as its last ops said.")
    log_position = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="How far it holds our log, as it last told us (a pull, a position)."
    )
    log_position_at = models.DateTimeField(null=True, blank=True, help_text="When it last told us that.")
    # Compaction (``federation.services.compaction``): of its log as it told us, and of our copy of it. (Defaults
    # in the database too, as for LogHead's: the bench and the live tests seed these tables in SQL.)
    remote_floor = models.PositiveBigIntegerField(
        default=0, db_default=0, help_text="Its log is compacted up to here, it said."
    )
    tombstones_to = models.PositiveBigIntegerField(
        default=0,
        db_default=0,
        help_text="The tombstones of its compacted range fetched up to here (while below its floor).",
    )
    copy_floor = models.PositiveBigIntegerField(
        default=0, db_default=0, help_text="Our copy of its log is compacted up to here (tombstones kept)."
    )
    applied_ops = models.PositiveBigIntegerField(default=0)
    invalid_ops = models.PositiveIntegerField(default=0, help_text="Ops refused because they did not verify.")
    refused_ops = models.PositiveIntegerField(default=0, help_text="Valid ops refused by a limit (quota, names).")
    # Set reconciliation with the peer (its snapshots fetched here).
    reconciled_at = models.DateTimeField(null=True, blank=True, help_text="The last reconciliation round with it.")
    reconcile_fetched = models.PositiveBigIntegerField(default=0, help_text="Items fetched in the last round.")
    reconcile_bytes = models.PositiveBigIntegerField(default=0, help_text="Bytes the last round moved, both ways.")
    reconcile_fetched_total = models.PositiveBigIntegerField(default=0, help_text="Items fetched by every round.")
    reconcile_bytes_total = models.PositiveBigIntegerField(default=0, help_text="Bytes moved by every round.")
    reconcile_note = models.CharField(max_length=200, blank=True, help_text="What the last round did, or why not.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def lag_ops(self) -> int:
        return max(self.remote_head - self.cursor, 0)


def new_incarnation() -> str:
    """A random id for one life of a log: a gateway restored from a backup starts a new one."""
    return secrets.token_hex(8)


class LogHead(models.Model):
    """The last seq this gateway gave one of its own operations (one row per own identity key), and the log's
    incarnation: a gateway restored from a backup starts a new one, recovers its lost ops from its peers, and
    numbers no new op until it has (``federation.services.log_restored``)."""

    origin = models.TextField(unique=True)
    seq = models.PositiveBigIntegerField(default=0)
    incarnation = models.CharField(max_length=32, default=new_incarnation)
    recovering = models.BooleanField(default=False, help_text="Restored from a backup: recovering, not numbering.")
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_from = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The head the restored database had: what follows is recovered from peers."
    )
    recovered_ops = models.PositiveBigIntegerField(default=0)
    recovery_note = models.TextField(blank=True, help_text="What the last restore found and did.")
    floor = models.PositiveBigIntegerField(
        default=0, db_default=0, help_text="Compacted up to here: only tombstones (delete ops) are kept at or below it."
    )
    compacted_ops = models.PositiveBigIntegerField(
        default=0, db_default=0, help_text="Ops compaction removed, of every log."
    )
    compacted_at = models.DateTimeField(null=True, blank=True)
    compact_note = models.CharField(
        max_length=300, blank=True, db_default="", help_text="What the last compaction did, and why."
    )

    def __str__(self) -> str:
        return f"head {self.seq}"


class Operation(models.Model):
    """One entry of a per-origin append-only log: ours (``origin`` = our key) or a peer's, replicated here."""

    class Kind(models.TextChoices):
        STATEMENT = "statement"
        MAILBOX = "mailbox"
        MESSAGE = "message"
        DELETE = "delete"
        SUSPEND = "suspend"
        RESTORE = "restore"

    origin = models.TextField(help_text="The Maxima identity key of the gateway that made the operation.")
    seq = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Its place in the origin's log; empty for our own until it is numbered."
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    payload = models.JSONField(help_text="What the operation says (a message's ciphertext stays in its Message).")
    created_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=32, blank=True, help_text="How applying it went here (peers' ops).")

    class Meta:
        ordering = ["origin", "seq"]
        indexes = [
            models.Index(fields=["origin", "id"], condition=Q(seq__isnull=True), name="federation_op_unnumbered"),
            # The tombstones, found by the message (``deletion_logged``, on every replicated letter) and by the
            # mailbox (``tombstones_of``, every reconciliation of its messages), not by a scan of the log.
            models.Index(KeyTransform("uid", "payload"), condition=Q(kind="delete"), name="federation_op_deleted_uid"),
            models.Index(KeyTransform("name", "payload"), condition=Q(kind="delete"), name="federation_op_deleted_in"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["origin", "seq"], name="federation_op_once"),
            models.CheckConstraint(condition=Q(seq__isnull=False) | Q(outcome="own"), name="federation_op_numbered"),
            models.CheckConstraint(
                condition=Q(kind__in=["statement", "mailbox", "message", "delete", "suspend", "restore"]),
                name="federation_op_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.seq} of …{self.origin[-12:]}"


class Claim(models.Model):
    """This gateway's claim of a new name across the membership, before the name is confirmed."""

    class Status(models.TextChoices):
        OPEN = "open"
        CONFIRMED = "confirmed"
        REFUSED = "refused"
        EXPIRED = "expired"

    claim_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=32, db_index=True)
    skeleton = models.CharField(max_length=32)
    owner_key = models.TextField()
    membership = models.PositiveIntegerField(help_text="Peers asked plus this gateway.")
    asked = models.JSONField(default=list, help_text="Identity keys of the peers asked.")
    acks = models.JSONField(default=list, help_text="Identity keys that acked (this gateway included).")
    nacks = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    expires_at = models.DateTimeField(db_index=True)
    answered_challenge = models.CharField(
        max_length=64, blank=True, help_text="The register challenge the owner answered while the claim was open."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"claim of {self.name} ({self.status})"

    @property
    def majority(self) -> int:
        return self.membership // 2 + 1


class Lease(models.Model):
    """An ack this gateway gave a claim (a peer's or its own): it acks no other owner of the name meanwhile."""

    class Status(models.TextChoices):
        LIVE = "live"
        COMMITTED = "committed"
        ABORTED = "aborted"
        EXPIRED = "expired"

    HOLDING = (Status.LIVE, Status.COMMITTED)

    claim_id = models.CharField(max_length=64, unique=True)
    claimant = models.TextField(help_text="The identity key of the gateway that claimed.")
    name = models.CharField(max_length=32)
    skeleton = models.CharField(max_length=32, db_index=True)
    owner_key = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LIVE)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["skeleton"], condition=Q(status__in=["live", "committed"]), name="federation_one_live_lease"
            ),
        ]

    def __str__(self) -> str:
        return f"lease of {self.name} ({self.status})"


class PeerLagSample(models.Model):
    """A peer's lag at one moment, for the admin's 24-hour chart (the peer row holds only the present). Written by
    the sync round every MNS_SAMPLE_EVERY seconds, kept 48 hours."""

    peer = models.ForeignKey(Peer, on_delete=models.CASCADE, related_name="lag_samples")
    at = models.DateTimeField(db_index=True)
    lag_ops = models.PositiveBigIntegerField()
    lag_seconds = models.FloatField()

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.peer_id} at {self.at:%Y-%m-%d %H:%M}: {self.lag_ops} ops"
