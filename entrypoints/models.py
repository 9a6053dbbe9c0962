"""The entry-point list on chain (DESIGN §6): how this gateway set it up, and every list it published or read."""

from django.db import models


class Setup(models.Model):
    """What ``entrypoints_setup`` made on this gateway's node: one row (pk 1), filled in step by step.

    Each field is written as soon as its step is done, so a setup interrupted half-way resumes where it stopped
    and never makes a second token or a second bulletin coin.
    """

    owner_key = models.CharField(max_length=70, blank=True, help_text="Wallet key in state port 0 (getaddress).")
    token_name = models.CharField(max_length=64, default="mns-entry")
    provisional_tokenid = models.CharField(max_length=70, blank=True, help_text="The id tokencreate answered.")
    token_coinid = models.CharField(max_length=70, blank=True, help_text="The minted coin: finds the final id.")
    tokenid = models.CharField(max_length=70, blank=True, help_text="The final token id, read after mining.")
    script = models.TextField(blank=True)
    script_address = models.CharField(max_length=70, blank=True)
    first_coinid = models.CharField(max_length=70, blank=True, help_text="The first bulletin coin.")
    steps = models.JSONField(default=list, help_text="What setup did, in order, with times.")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "setup"
        verbose_name_plural = "setup"

    def __str__(self) -> str:
        return f"entry-point token {self.tokenid or '(pending)'}"


class Publication(models.Model):
    """One entry-point list: published by this gateway (a rotation of the bulletin coin), or read from the chain.

    ``seq`` is unique: a failed publication is retried with the same seq and list, never replaced by a new one
    while it is unfinished, so the chain never holds two live bulletins. A ``refused`` one was never sent (an empty
    list, or no permanent address: ``error`` says why); it keeps its seq, and the next list takes the one after.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        CONFIRMED = "confirmed"
        FAILED = "failed"
        REFUSED = "refused"

    class Origin(models.TextChoices):
        PUBLISHED = "published"
        OBSERVED = "observed"

    seq = models.PositiveBigIntegerField(unique=True)
    bulletin = models.JSONField(help_text="{v, seq, issued_at, entries}")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.PUBLISHED)
    input_coinid = models.CharField(max_length=70, blank=True, help_text="The bulletin coin the rotation spent.")
    coinid = models.CharField(max_length=70, blank=True, help_text="The bulletin coin carrying this list.")
    txn_id = models.CharField(max_length=64, blank=True, help_text="The node's txn* id of the last attempt.")
    txpowid = models.CharField(max_length=70, blank=True)
    sent_block = models.PositiveBigIntegerField(null=True, blank=True, help_text="The chain's block when sent.")
    block = models.PositiveBigIntegerField(null=True, blank=True, help_text="The block that mined the coin.")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"entry points #{self.seq} ({self.status})"

    @property
    def entries(self) -> list[dict]:
        return list(self.bulletin.get("entries") or [])
