"""Names on chain: read the MNS address through this gateway's node, keep what was read, and hold registrations
to the chain's first-valid-coin rule (``docs/protocol.md``, "Names on chain (Minima's MNS)").

- ``coins_refresh`` reads a name's coins (``coins address: state: order:asc simplestate:true``), stores the
  coins not seen before, and asks the node's ``verify`` once for each coin the rule needs (``name_record`` asks
  only for coins that could count).
- ``registration_proof`` is the check a registration makes before it holds a name: a name held on chain is
  refused (``name_held_on_chain``) unless the registrant sends the on-chain holder key's ``sign`` over the
  register statement, checked by the node (``chain_signature_invalid`` when it does not verify).
- ``coin_seen`` stores a coin from the node's NOTIFYCOIN/NEWCOIN webhook; ``coin_check`` (a task) verifies it.

A node that cannot be read fails the registration closed (503 ``chain_unreadable``): a name held on chain must not
get a second owner because the node was briefly away. A gateway with no node configured has no chain to read.
"""

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from core.errors import DomainError
from mns_client.protocol import chainnames
from mns_client.protocol.chainnames import MNS_ADDRESS, ChainName
from mns_client.protocol.errors import MNSError, RPCError
from mns_client.protocol.rpc import MinimaRPC
from onchain import selectors
from onchain.models import ChainCoin, ChainProof

logger = logging.getLogger(__name__)

ChangeGuard = Callable[[Iterable[str]], AbstractContextManager[None]]
_guards: list[ChangeGuard] = []


def register_change_guard(guard: ChangeGuard) -> None:
    """Register what wraps every write that changes what a lookup says of a name on chain: ``guard(names)`` is
    entered before the write and left after it (the registry's cached lookups: marked before, dropped after the
    commit)."""
    _guards[:] = [guard]


def _changing(name: str) -> AbstractContextManager[None]:
    return _guards[0]([name]) if _guards else nullcontext()


@dataclass(frozen=True)
class Proof:
    """A registration's on-chain check passed: ``holder`` (None: the name is not on chain) signed it."""

    name: str
    owner_key: str
    holder: str | None


def enabled() -> bool:
    return settings.MNS_CHAIN_NAMES and bool(settings.MINIMA_RPC_URL)


def registration_proof(
    *, name: str, owner_key: str, statement: bytes, signature: bytes | None, client: MinimaRPC
) -> Proof:
    """Refuse a registration of ``name`` held on chain by a key whose ``sign`` over ``statement`` (the register
    statement's canonical bytes) the registrant did not send; reads the chain on demand. Writes only the coin
    cache: the caller records the proof (``proof_record``) in the registration's own transaction."""
    record = coins_refresh(name=name, client=client)
    if record is None:
        return Proof(name=name, owner_key=owner_key, holder=None)
    if signature is None:
        raise DomainError(
            "name_held_on_chain",
            f"{name!r} is registered on chain (Minima's MNS) by the wallet key {record.holder}. To register it here, "
            "sign the register statement with that key (`sign publickey:<key> data:<statement as hex>` on the node "
            "that holds it) and send the signature as chain_signature.",
            status=409,
        )
    if not _verify(client, publickey=record.holder, data=statement, signature=signature):
        raise DomainError(
            "chain_signature_invalid",
            f"chain_signature is not a signature of the register statement by {record.holder}, the key that holds "
            f"{name!r} on chain.",
        )
    return Proof(name=name, owner_key=owner_key, holder=record.holder)


def proof_record(proof: Proof) -> None:
    """Keep a passed proof (inside the registration's transaction, so a refused registration keeps none)."""
    if proof.holder is None:
        return
    try:
        with _changing(proof.name), transaction.atomic():
            ChainProof.objects.get_or_create(name=proof.name, owner_key=proof.owner_key, holder=proof.holder)
    except IntegrityError:  # the same proof recorded at the same moment: it is there
        pass


def coins_refresh(*, name: str, client: MinimaRPC) -> ChainName | None:
    """Read ``name``'s coins from the node, keep the new ones, verify what the rule needs; the name's record."""
    try:
        coins, skipped = chainnames.fetch_coins(client, name)
    except MNSError as failed:
        logger.warning("could not read the MNS coins from the node: %s", getattr(failed, "code", type(failed).__name__))
        raise DomainError(
            "chain_unreadable", "This gateway cannot read names on chain right now; try again shortly.", status=503
        ) from None
    if skipped:
        logger.info("%s coin(s) the node matched for %s are not its MNS records", skipped, name)
    for coin in coins:
        _store(coin)
    return name_record(name=name, client=client)


def name_record(*, name: str, client: MinimaRPC) -> ChainName | None:
    """Fold the stored coins of ``name``, asking the node about each coin the rule needs and it was never asked."""

    def verify(row: ChainCoin) -> bool:
        if row.valid is None:
            _verdict(
                row, _verify(client, publickey=row.owner, data=_coin(row).signed_data(), signature=_signature(row))
            )
        return bool(row.valid)

    return selectors.fold(name=name, verify=verify)


def coin_seen(*, coin: Any) -> ChainCoin | None:
    """A coin from the node's webhook: kept unverified (``coin_check`` asks the node); None if not an MNS record."""
    try:
        parsed = chainnames.parse_coin(coin)
    except chainnames.ChainCoinInvalid:
        return None
    return _store(parsed)


def coin_check(*, coin_id: int, client: MinimaRPC) -> None:
    """Ask the node about one stored coin (idempotent: a coin with a verdict is left alone)."""
    row = ChainCoin.objects.filter(id=coin_id, valid__isnull=True).first()
    if row is None:
        return
    _verdict(row, _verify(client, publickey=row.owner, data=_coin(row).signed_data(), signature=_signature(row)))


def watch(*, client: MinimaRPC, hook: str) -> None:
    """Ask the node to tell this gateway of new coins at the MNS address (``coinnotify``, and a NOTIFYCOIN
    webhook to ``hook``); both idempotent, so the periodic task may run it any number of times."""
    if not client.coinnotify(action="check", address=MNS_ADDRESS).get("found"):
        client.coinnotify(action="add", address=MNS_ADDRESS)
    entry = f"NOTIFYCOIN#{hook}"
    if entry not in client.webhooks_list():
        client.webhooks_add(hook=hook, filter="NOTIFYCOIN")


# -------------------------------------------------------------------------------------------------- helpers


def _verify(client: MinimaRPC, *, publickey: str, data: bytes, signature: bytes) -> bool:
    try:
        return client.verify(publickey=publickey, data=data, signature=signature)
    except RPCError as failed:
        logger.warning("the node could not verify a signature: %s", failed.code)
        raise DomainError(
            "chain_unreadable",
            "This gateway cannot check signatures on chain right now; try again shortly.",
            status=503,
        ) from None


def _signature(row: ChainCoin) -> bytes:
    return bytes.fromhex(row.signature_hex)


def _store(coin: chainnames.ChainCoin) -> ChainCoin:
    """Keep a coin once (a coin never changes: its id is the hash of its contents); a concurrent insert of the
    same coin is the same row."""
    try:
        with transaction.atomic():
            return _insert(coin)
    except IntegrityError:
        return ChainCoin.objects.get(coinid=coin.coinid)


def _insert(coin: chainnames.ChainCoin) -> ChainCoin:
    row, _ = ChainCoin.objects.get_or_create(
        coinid=coin.coinid,
        defaults={
            "name": coin.name,
            "owner": coin.owner,
            "transfer": coin.transfer,
            "data": coin.data,
            "datahex": coin.datahex,
            "signature_hex": coin.signature.hex(),
            "created_block": coin.created,
        },
    )
    return row


def _verdict(row: ChainCoin, valid: bool) -> None:
    with _changing(row.name):
        ChainCoin.objects.filter(id=row.id, valid__isnull=True).update(valid=valid)
    row.valid = valid
    if not valid:
        logger.info("a coin at the MNS address for %s does not verify", row.name)


def _coin(row: ChainCoin) -> chainnames.ChainCoin:
    return selectors.coin_of(row)


def hook_url() -> str:
    """Where the node posts coin events: the secret path of this app on this gateway."""
    return f"{settings.MNS_HOOK_BASE_URL.rstrip('/')}/onchain/hook/{settings.MAXIMA_HOOK_SECRET}/"
