"""Reads of what is known of names on chain, without asking the node (the lookup path)."""

from collections.abc import Callable
from typing import Any

from mns_client.protocol import chainnames
from mns_client.protocol.chainnames import ChainName
from onchain.models import ChainCoin, ChainProof


def coin_of(row: ChainCoin) -> chainnames.ChainCoin:
    return chainnames.ChainCoin(
        coinid=row.coinid,
        created=row.created_block,
        owner=row.owner,
        transfer=row.transfer,
        name=row.name,
        data=row.data,
        datahex=row.datahex,
        signature=bytes.fromhex(row.signature_hex),
    )


def fold(*, name: str, verify: Callable[[ChainCoin], bool]) -> ChainName | None:
    """The first-valid-coin rule over the stored coins of ``name``; ``verify`` gets the stored row."""
    rows = {row.coinid: row for row in ChainCoin.objects.filter(name=name)}
    return chainnames.name_record(
        [coin_of(row) for row in rows.values()], name, verify=lambda coin: verify(rows[coin.coinid])
    )


def chain_record(name: str) -> ChainName | None:
    """The name's record from the coins the node has already judged (a coin not yet verified does not count)."""
    return fold(name=name, verify=lambda row: row.valid is True)


def lookup_status(*, name: str, owner_key: str | None) -> dict[str, Any] | None:
    """What a lookup says of ``name`` on chain: None when it is not held there; else the holder key, the blocks,
    and whether this gateway's owner ``owner_key`` proved control of that holder key (``agrees``)."""
    record = chain_record(name)
    if record is None:
        return None
    agrees = (
        bool(owner_key) and ChainProof.objects.filter(name=name, owner_key=owner_key, holder=record.holder).exists()
    )
    return {
        "holder": record.holder,
        "registered_block": record.created,
        "updated_block": record.updated,
        "data": record.data,
        "agrees": agrees,
    }
