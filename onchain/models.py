"""What this gateway has read of the names Minima's MNS registers on chain (``docs/protocol.md``, "Names on
chain"): every coin seen at the MNS address, with the node's verdict on its signature, and the proofs that a
registrant here controls a name's on-chain key.

Coins are kept, not only the names they fold into, because a node that does not track the MNS address forgets old
coins (MNS's own MiniDapp keeps a table for the same reason); the node's ``verify`` is asked once per coin.
"""

from django.db import models


class ChainCoin(models.Model):
    """One coin at the MNS address, as parsed from the node (``mns_client.protocol.chainnames.ChainCoin``)."""

    coinid = models.CharField(max_length=66, unique=True)
    name = models.CharField(max_length=255, db_index=True, help_text="The name port, brackets stripped (exact).")
    owner = models.CharField(max_length=66, help_text="The wallet key that signed the coin.")
    transfer = models.CharField(max_length=66, help_text="The wallet key the coin hands the name to.")
    data = models.TextField(blank=True)
    datahex = models.TextField(blank=True)
    signature_hex = models.TextField(help_text="The owner's TreeKey signature (about 4 kB), for the node's verify.")
    created_block = models.PositiveBigIntegerField()
    valid = models.BooleanField(null=True, help_text="The node's verify of the owner's signature; null: not asked.")
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_block", "id"]

    def __str__(self) -> str:
        return f"{self.name} @ {self.created_block}"


class ChainProof(models.Model):
    """A registrant here proved control of a name's on-chain holder key (its ``sign`` over the register
    statement, checked by the node's ``verify``). Lookups say a name agrees with the chain while its owner here
    has a proof for the key that holds it on chain now."""

    name = models.CharField(max_length=32, db_index=True)
    owner_key = models.TextField(help_text="The registrant's Maxima key (the statement's owner).")
    holder = models.CharField(max_length=66, help_text="The on-chain holder key that signed the statement.")
    proved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "owner_key", "holder"], name="onchain_proof_once"),
        ]

    def __str__(self) -> str:
        return f"{self.name} by {self.holder[:10]}…"
