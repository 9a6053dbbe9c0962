"""The directory's Merkle roots (docs/protocol.md, "Transparency"): this gateway's own root per cut-off, the roots
its peers signed (kept as evidence), and the roots read from the chain's bulletins.

A cut-off's root is computed once and never changed (``cutoff`` is unique): what this gateway signed for a
cut-off is what it answers proofs against, even if a late statement issued before the cut-off arrives after. So
the entries of each bucket a root was made of are kept too (``BucketEntries``), by content: a late statement
changes the history, never what a root's proofs are built from.
"""

from django.db import models


class DirectoryRoot(models.Model):
    """This gateway's root of the directory at one cut-off, with the 4096 bucket roots its proofs need."""

    cutoff = models.BigIntegerField(unique=True, help_text="ms since the epoch: statements issued at or before it.")
    size = models.PositiveBigIntegerField(help_text="Names in the directory at the cut-off.")
    root = models.BinaryField(max_length=32)
    bucket_roots = models.BinaryField(help_text="The 4096 bucket roots, 32 bytes each, in bucket order.")
    bucket_stamps = models.BinaryField(
        default=b"",
        help_text="Per bucket, 8 bytes of what its statements at the cut-off were (read before its entries): the "
        "next root re-hashes only the buckets whose stamp moved. Empty for a root from before the stamps.",
    )
    rehashed = models.PositiveSmallIntegerField(
        default=0, help_text="Buckets hashed from the history for this root (4096: computed whole)."
    )
    signer_key = models.TextField(help_text="This gateway's Maxima identity key when it signed.")
    signature = models.BinaryField(help_text="maxsign over Root.canonical(), by this gateway's node.")
    compute_ms = models.PositiveIntegerField(default=0, help_text="How long computing the root took.")
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-cutoff"]

    def __str__(self) -> str:
        return f"root at {self.cutoff} ({self.size} names)"


class BucketEntries(models.Model):
    """One bucket's entries as a root of this gateway was made of them, kept by content (bucket and bucket root):
    a lookup's proof against that root is built from these, whatever reached the history since. A bucket that did
    not change from one cut-off to the next is one row for both; an empty bucket has none."""

    bucket = models.PositiveSmallIntegerField()
    root = models.BinaryField(max_length=32)
    size = models.PositiveIntegerField(help_text="Names in the bucket.")
    entries = models.BinaryField(
        help_text="(name, seq, statement hash) in tree order, packed by transparency.services."
    )
    made_at = models.BigIntegerField(help_text="The cut-off of the root it was first hashed for.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "root"], name="transparency_bucket_entries_unique"),
        ]

    def __str__(self) -> str:
        return f"bucket {self.bucket} ({self.size} names)"


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
