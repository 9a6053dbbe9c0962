from django.db import models
from django.db.models import Q


class InboundEvent(models.Model):
    """One Maxima message as the node's webhook delivered it, stored before the hook answers.

    Unique on ``msgid`` (the node's hash of the message), so a webhook posted twice is stored once. Processing is
    claimed with a conditional UPDATE and may run more than once after a crash: handlers are idempotent.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"
        IGNORED = "ignored"
        REJECTED = "rejected"

    msgid = models.CharField(max_length=66, unique=True)
    sender = models.TextField(help_text="The sender's Maxima identity key (verified by the node).")
    recipient_key = models.TextField(help_text="The key the message was encrypted to (MLS or per-host key).")
    application = models.CharField(max_length=255, db_index=True)
    data = models.BinaryField()
    size = models.PositiveIntegerField()
    timemilli = models.BigIntegerField()
    random = models.CharField(max_length=66)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep last enqueued it (unset: only when it arrived)."
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "id"], name="inbound_status_id"),
        ]

    def __str__(self) -> str:
        return f"{self.application} {self.msgid[:18]}… ({self.status})"


class OutboundMessage(models.Model):
    """A Maxima message to send, kept until the node says ``delivered:true`` or it fails for good."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        CANCELLED = "cancelled"

    destination = models.TextField(help_text="Mx…@host:port, MAX#key#mls, or 0x… identity key of a contact.")
    application = models.CharField(max_length=255)
    payload = models.BinaryField()
    size = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=12, help_text="Its budget of tries, as it was enqueued.")
    # Defaults in the database too: a process of the code before them still inserts rows while a deploy migrates.
    uncounted = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="Tries that did not count against max_attempts: waits for its MAX# address to resolve, and sends "
        "that raised in the gateway before the node had them or after it sent them.",
    )
    released = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,
        help_text="Tries of it left uncounted because its send raised in the gateway (at most RELEASED_UNCOUNTED_MAX).",
    )
    next_attempt_at = models.DateTimeField(db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When a task to send it was last enqueued.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    unresolved_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when its MAX# destination has not resolved (its MLS restarted?)."
    )
    msgid = models.CharField(max_length=66, blank=True)
    batchable = models.BooleanField(
        default=False,
        help_text="May travel in one batch message with others due to the same destination (a receipt, a verdict, "
        "a forward: mns_client.protocol.batch).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status__in=["queued", "sending"]), name="outbound_due"
            ),
            # What a batch to one destination takes (maxima.services._batch_claim).
            models.Index(
                fields=["destination", "id"], condition=Q(status="queued", batchable=True), name="outbound_batch_due"
            ),
            # A batch to one destination in flight (maxima.selectors.batch_in_flight): a few rows at any time.
            models.Index(
                fields=["destination"], condition=Q(status="sending", batchable=True), name="outbound_batch_sending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.application} to {self.destination[:24]}… ({self.status})"


class NodeState(models.Model):
    """What the gateway last learnt about its own Minima node (one row, written by the supervision task)."""

    checked_at = models.DateTimeField(null=True, blank=True)
    reachable = models.BooleanField(default=False)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    version = models.CharField(max_length=64, blank=True)
    block = models.BigIntegerField(null=True, blank=True)
    publickey = models.TextField(blank=True, help_text="The gateway's Maxima identity key.")
    mls = models.TextField(blank=True)
    localidentity = models.TextField(blank=True)
    p2pidentity = models.TextField(blank=True)
    webhook = models.TextField(blank=True, help_text="The hook entry (FILTER#url) the node posts to, once checked.")
    webhook_registered_at = models.DateTimeField(null=True, blank=True)
    address_resolves = models.BooleanField(
        null=True, blank=True, help_text="Whether the published MAX# address resolves through its MLS (empty: no MAX#)."
    )
    address_checked_at = models.DateTimeField(null=True, blank=True)
    address_dark_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when the MAX# address has not resolved (its MLS restarted?)."
    )

    class Meta:
        verbose_name = "node state"

    def __str__(self) -> str:
        return "reachable" if self.reachable else f"unreachable: {self.error[:60]}"


class QueueSample(models.Model):
    """The inbox's and outbox's depth and oldest age at one moment, for the admin's 24-hour charts (the rows
    themselves say when each message came and went, but not how long the queues were). Written by the outbound
    sweep every MNS_SAMPLE_EVERY seconds, kept 48 hours."""

    at = models.DateTimeField(db_index=True)
    inbound_depth = models.PositiveIntegerField()
    inbound_oldest_seconds = models.FloatField()
    outbound_depth = models.PositiveIntegerField()
    outbound_oldest_seconds = models.FloatField()

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} in {self.inbound_depth} out {self.outbound_depth}"
