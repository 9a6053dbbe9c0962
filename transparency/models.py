"""The directory's Merkle roots (docs/protocol.md, "Transparency"): this gateway's own root per cut-off, the roots
its peers signed (kept as evidence), and the roots read from the chain's bulletins.

A cut-off's root is computed once and never changed (``cutoff`` is unique): what this gateway signed for a
cut-off is what it answers proofs against, even if a late statement issued before the cut-off arrives after.
"""

from django.db import models


class DirectoryRoot(models.Model):
    """This gateway's root of the directory at one cut-off, with the 4096 bucket roots its proofs need."""

    cutoff = models.BigIntegerField(unique=True, help_text="ms since the epoch: statements issued at or before it.")
    size = models.PositiveBigIntegerField(help_text="Names in the directory at the cut-off.")
    root = models.BinaryField(max_length=32)
    bucket_roots = models.BinaryField(help_text="The 4096 bucket roots, 32 bytes each, in bucket order.")
    signer_key = models.TextField(help_text="This gateway's Maxima identity key when it signed.")
    signature = models.BinaryField(help_text="maxsign over Root.canonical(), by this gateway's node.")
    compute_ms = models.PositiveIntegerField(default=0, help_text="How long computing the root took.")
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-cutoff"]

    def __str__(self) -> str:
        return f"root at {self.cutoff} ({self.size} names)"


class PeerRoot(models.Model):
    """A root a peer signed and sent (mns-sync ``root``): its signature verified by the peer's identity key.

    Kept as received, as evidence: a peer that signed two roots for one cut-off keeps both."""

    peer_name = models.CharField(max_length=64)
    peer_key = models.TextField(db_index=True)
    cutoff = models.BigIntegerField(db_index=True)
    size = models.PositiveBigIntegerField()
    root = models.BinaryField(max_length=32)
    signature = models.BinaryField()
    message = models.JSONField(help_text="The mns-sync message as received.")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-cutoff", "peer_name"]
        constraints = [
            models.UniqueConstraint(fields=["peer_key", "cutoff", "root"], name="transparency_peer_root_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.peer_name} at {self.cutoff}"


class ChainRoot(models.Model):
    """The signed root a bulletin on chain carried (told by ``entrypoints`` when it reads or confirms one)."""

    bulletin_seq = models.PositiveBigIntegerField(unique=True)
    cutoff = models.BigIntegerField(db_index=True)
    size = models.PositiveBigIntegerField()
    root = models.BinaryField(max_length=32)
    signers = models.JSONField(help_text="[{key, signature}] as on chain.")
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-bulletin_seq"]

    def __str__(self) -> str:
        return f"bulletin #{self.bulletin_seq}: root at {self.cutoff}"
