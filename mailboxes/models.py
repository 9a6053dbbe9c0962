"""Mailboxes: one per confirmed name, the ciphertexts delivered to it, and the access token of its owner.

The invariants the database keeps itself, so no race can break them:

- a mailbox's use never exceeds its quota, nor goes below zero: it is counted on a few escrow shards
  (``MailboxCounter``), each within its allowance (check constraints), and the allowances sum to the quota
  (deliveries reserve space with one conditional UPDATE of one shard, see ``services.delivery_store``);
- a sender's delivery id is stored once per mailbox (unique), so a resent delivery is never stored twice;
- a mailbox has at most one live access token (a conditional unique constraint), so two rotations at once
  cannot both leave a token behind.

Ciphertexts are opaque bytes: nothing here decrypts, logs or shows them (the admin never loads them).
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from handshake.models import Challenge
from maxima.models import OutboundMessage
from mns_client.protocol.mailbox import SCHEMES
from registry.models import NameRecord


def new_message_id() -> str:
    """A message's public id: random, so it tells nobody how many messages the gateway holds."""
    return secrets.token_urlsafe(12)


def new_token_id() -> str:
    return secrets.token_urlsafe(12)


class Mailbox(models.Model):
    """The mailbox behind a confirmed name: its owner's settings and quota (its use is counted on its
    ``counters``; change the quota with ``services.mailbox_quota_set``, which splits it among them)."""

    record = models.OneToOneField(NameRecord, on_delete=models.CASCADE, related_name="mailbox")
    owner_key = models.TextField(help_text="The owner's Maxima identity key when the mailbox was created.")
    address = models.TextField(blank=True, help_text="The owner's Maxima address (Mx…@host:port or MAX#…).")
    max_messages = models.PositiveIntegerField()
    max_bytes = models.PositiveBigIntegerField()
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="The owner's choice, at most the gateway's; empty: the gateway's."
    )
    auto_forward = models.BooleanField(default=False, help_text="Forward every new message to the owner's address.")
    delete_forwarded = models.BooleanField(default=False, help_text="Delete a message once it is forwarded.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["record__name"]
        verbose_name_plural = "mailboxes"
        # An owner's mailboxes, found by the key every mns message from the owner's node is signed with
        # (``services.owner_address_seen``): without it, each such message scanned every mailbox kept here.
        indexes = [models.Index(fields=["owner_key"], name="mailbox_owner_key")]

    def __str__(self) -> str:
        return self.record.name


class MailboxCounter(models.Model):
    """One escrow shard of a mailbox's quota: the messages and bytes counted on it, and its allowance (its share of
    the quota; the shards' allowances sum to the mailbox's ``max_messages`` and ``max_bytes``). Its use is the sum
    over its shards (``selectors.mailbox_usage``); a message records the shard that counted it.

    A delivery outside a transaction takes room on one shard with one conditional UPDATE, so deliveries to one
    mailbox that land on different shards do not wait for each other's commit; one that finds its shard's
    allowance used up moves unused allowance over from the other shards (``services.counters``)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="counters")
    shard = models.PositiveSmallIntegerField()
    message_count = models.PositiveIntegerField(default=0)
    byte_count = models.PositiveBigIntegerField(default=0)
    max_messages = models.PositiveIntegerField()
    max_bytes = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["mailbox", "shard"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "shard"], name="mailbox_counter_shard_once"),
            models.CheckConstraint(condition=Q(message_count__lte=F("max_messages")), name="mailbox_counter_messages"),
            models.CheckConstraint(condition=Q(byte_count__lte=F("max_bytes")), name="mailbox_counter_bytes"),
        ]

    def __str__(self) -> str:
        return f"shard {self.shard}: {self.message_count}/{self.max_messages} messages"


class Message(models.Model):
    """One delivered ciphertext, as the sender made it, until its owner deletes it or it expires."""

    class State(models.TextChoices):
        STORED = "stored"
        FORWARDING = "forwarding"
        FORWARDED = "forwarded"

    Scheme = models.TextChoices("Scheme", [(scheme.replace("-", "_").upper(), scheme) for scheme in SCHEMES])

    uid = models.CharField(max_length=32, unique=True, default=new_message_id, editable=False)
    # No index of its own: ``message_mailbox_newest`` (mailbox, -id) serves every look-up by mailbox. With a second,
    # single-column one, PostgreSQL read a big mailbox's list through it and sorted all its messages (it plans for
    # the average mailbox): 62 ms instead of 0.1 ms for 21 of 47 540 messages in a table of a million.
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages", db_index=False)
    delivery_id = models.CharField(max_length=64, help_text="The sender's own id of this delivery.")
    sender_key = models.TextField(blank=True, help_text="The sender's Maxima identity key; may be empty over REST.")
    sender_verified = models.BooleanField(help_text="Maxima verified the sender (false: a REST submission).")
    scheme = models.CharField(max_length=32, choices=Scheme.choices)
    ciphertext = models.BinaryField()
    size = models.PositiveIntegerField()
    shard = models.PositiveSmallIntegerField(default=0, help_text="The mailbox's counter shard that counted it.")
    received_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.STORED)
    forwarded_at = models.DateTimeField(null=True, blank=True)
    delete_when_forwarded = models.BooleanField(default=False)
    outbound = models.ForeignKey(
        OutboundMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=True
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["mailbox", "-id"], name="message_mailbox_newest"),
            # /metrics (every scrape) and the admin's charts count the messages received in the last hour / day.
            models.Index(fields=["received_at"], name="message_received"),
            models.Index(fields=["outbound"], condition=Q(state="forwarding"), name="message_forwarding"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "sender_verified", "sender_key", "delivery_id"], name="message_delivery_once"
            ),
            models.CheckConstraint(condition=Q(state__in=["stored", "forwarding", "forwarded"]), name="message_state"),
            models.CheckConstraint(condition=Q(scheme__in=list(SCHEMES)), name="message_scheme"),
            models.CheckConstraint(condition=Q(size__gt=0), name="message_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.uid} ({self.size} bytes, {self.state})"


class SenderRule(models.Model):
    """A sender key on one mailbox's block list or allow list (a non-empty allow list admits only its keys)."""

    class List(models.TextChoices):
        BLOCK = "block"
        ALLOW = "allow"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="sender_rules")
    sender_key = models.TextField()
    list = models.CharField(max_length=8, choices=List.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mailbox", "list", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "sender_key"], name="sender_rule_once"),
            models.CheckConstraint(condition=Q(list__in=["block", "allow"]), name="sender_rule_list"),
        ]

    def __str__(self) -> str:
        return f"{self.list} …{self.sender_key[-16:]}"


class BlockedSender(models.Model):
    """A sender key the gateway's staff blocked for every mailbox of this gateway."""

    sender_key = models.TextField(unique=True)
    reason = models.TextField()
    blocked_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="blocked_sender_has_reason")]

    def __str__(self) -> str:
        return f"…{self.sender_key[-16:]}"


class AccessToken(models.Model):
    """The owner's standing credential for one mailbox: ``MNS-Token <token_id>:<secret>``.

    The secret is stored as its SHA-256 only; ``blob`` is the ``maxencrypt`` of ``{token_id, secret}`` to the
    owner's Maxima key, kept so the register session's holder can fetch it: only the owner's node can open it.
    """

    token_id = models.CharField(max_length=64, unique=True, default=new_token_id, editable=False)
    secret_hash = models.CharField(max_length=64)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=32, help_text="The mailbox's name when the token was made.")
    owner_key = models.TextField()
    blob = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=150, blank=True, help_text="'owner', 'rotation' or a staff username.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox"], condition=Q(revoked_at=None), name="access_token_one_live"),
        ]

    def __str__(self) -> str:
        return f"{self.token_id} for {self.name}" + (" (revoked)" if self.revoked_at else "")


class Registration(models.Model):
    """What a registration request said beyond the signed statement, kept until its challenge is answered."""

    challenge = models.OneToOneField(Challenge, on_delete=models.CASCADE, related_name="registration")
    record = models.ForeignKey(NameRecord, on_delete=models.CASCADE, related_name="registrations")
    address = models.TextField(help_text="The owner's Maxima address, for forwarding and the access token.")
    source = models.CharField(max_length=16, choices=[("api", "REST API"), ("maxima", "Maxima")])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"registration of {self.record.name}"


class AuditEntry(models.Model):
    """What staff did to mailboxes and senders, who, when and why. Written by the services only."""

    class Action(models.TextChoices):
        PURGE = "purge"
        BLOCK_SENDER = "block_sender"
        UNBLOCK_SENDER = "unblock_sender"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit")
    name = models.CharField(max_length=32, blank=True, db_index=True)
    sender_key = models.TextField(blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="mailbox_audit"
    )
    actor_username = models.CharField(max_length=150)
    reason = models.TextField()
    detail = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "mailbox audit entry"
        verbose_name_plural = "mailbox audit entries"
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="mailbox_audit_has_reason")]

    def __str__(self) -> str:
        return f"{self.action} {self.name or self.sender_key[-16:]} by {self.actor_username}"
