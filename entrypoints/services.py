"""Entry points on chain (DESIGN §6, REFERENCE §5): set up the bulletin coin, publish lists, confirm, read.

The publisher (``MNS_PUBLISHER=true``) owns one coin of its entry-point token at the owner-locked bulletin
script's address; every publication rotates that coin with one ``txn*`` batch. Invariants:

- one unfinished publication at a time: a new list is made only when every earlier one is confirmed, so a
  failed rotation is retried with the same seq and list and the chain never holds two live bulletins (there is
  only one coin of the token; a rotation spends it);
- a publication is ``sent`` before its batch goes out (claimed by a conditional UPDATE, so two workers never
  both send it), ``confirmed`` only after its coin was read back from the node, ``failed`` with the error when
  the node refused, was down, or the rotation was not mined in ``MNS_ENTRYPOINTS_MINE_BLOCKS`` blocks;
- a retry first reads the chain: a rotation whose reply was lost but which was mined is adopted, not repeated.

A gateway that only reads (``MNS_ENTRYPOINTS_TOKENID`` and ``MNS_ENTRYPOINTS_OWNER`` set) tracks the script
and records each newer list it reads as an ``observed`` publication.
"""

import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from core.errors import DomainError
from entrypoints import selectors
from entrypoints.models import Publication, Setup
from mns_client.protocol.entrypoints import (
    BULLETIN_SCRIPT,
    Bulletin,
    BulletinInvalid,
    Entry,
    Reading,
    newest_bulletin,
    parse_entry,
)
from mns_client.protocol.errors import MNSError
from mns_client.protocol.funds import spend_when_confirmed
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.transparency import SignedRoot
from transparency import selectors as transparency
from transparency.services import chain_root_seen

logger = logging.getLogger(__name__)

UNFINISHED = (Publication.Status.PENDING, Publication.Status.SENT, Publication.Status.FAILED)
TOKEN_COLOUR = Decimal(1).scaleb(-44)  # the Minima a 1-token, 0-decimal tokencreate colours

NO_PERMANENT_ADDRESS = (
    "This gateway has no permanent Maxima address (MNS_MAXIMA_ADDRESS is not a MAX# address), so it cannot "
    "publish entry points: on the node that serves its MLS run `maxextra action:addpermanent "
    "publickey:<this gateway's Maxima key>`, set MNS_MAXIMA_ADDRESS=MAX#<that key>#<the MLS node's p2pidentity> "
    "and restart the gateway."
)
NO_ENTRIES = (
    "No entry to publish: no healthy, enabled, unpaused peer with a permanent address, and this gateway's own "
    "address is not one either (or its Maxima key is not known yet); an empty list is never published."
)


def _permanent_address_check() -> None:
    """Refuse, saying how to fix it, when this gateway has no permanent ``MAX#`` address (issue 17, point 5)."""
    if not settings.MNS_MAXIMA_ADDRESS.startswith("MAX#"):
        raise DomainError("no_permanent_address", NO_PERMANENT_ADDRESS, status=409)


def _now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------------------------ setup


def setup_run(
    *, rpc: MinimaRPC, wait_seconds: float | None = None, poll: float = 0.5, say: Callable[[str], None] = print
) -> tuple[Setup, list[str]]:
    """Make (or, on a reading gateway, track) the bulletin; resumable and idempotent. Returns what it did now.

    Publisher: owner key (``getaddress``), token (``tokencreate`` unless ``MNS_ENTRYPOINTS_TOKENID``), its final
    id (``tokens`` after mining), the script (``newscript trackall:true``), the first bulletin coin (seq 1).
    Reader: the configured token and owner, and the script tracked.
    """
    wait = settings.MNS_ENTRYPOINTS_SETUP_WAIT_SECONDS if wait_seconds is None else wait_seconds
    if settings.MNS_PUBLISHER and selectors.setup_done() is None:
        _permanent_address_check()
        if not entries_choose():
            raise DomainError("no_entries", NO_ENTRIES, status=409)
    setup, _ = Setup.objects.get_or_create(pk=1)
    done: list[str] = []

    def step(text: str, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(setup, key, value)
        setup.steps = [*setup.steps, {"at": timezone.now().isoformat(), "step": text, **fields}]
        setup.save()
        done.append(text)
        say(text)

    if not settings.MNS_PUBLISHER:
        _setup_reader(setup, rpc, step)
    else:
        _setup_publisher(setup, rpc, step, wait=wait, poll=poll, say=say)
    if done or setup.completed_at is None:
        setup.completed_at = timezone.now()
        setup.save(update_fields=["completed_at"])
    return setup, done


def _setup_reader(setup: Setup, rpc: MinimaRPC, step: Callable[..., None]) -> None:
    tokenid, owner = settings.MNS_ENTRYPOINTS_TOKENID, settings.MNS_ENTRYPOINTS_OWNER
    if not tokenid or not owner:
        raise DomainError(
            "not_configured",
            "This gateway does not publish (MNS_PUBLISHER is off): set MNS_ENTRYPOINTS_TOKENID and "
            "MNS_ENTRYPOINTS_OWNER to the publisher's (its /.well-known/mns.json lists them) to read the list.",
            status=503,
        )
    if setup.tokenid != tokenid or setup.owner_key != owner:
        step("reader: token and owner from settings", tokenid=tokenid, owner_key=owner)
    if not setup.script_address:
        _register_script(setup, rpc, step)


def _setup_publisher(
    setup: Setup, rpc: MinimaRPC, step: Callable[..., None], *, wait: float, poll: float, say: Callable[[str], None]
) -> None:
    """Each spend waits for coins deep enough (MNS_CONFIRMATIONS): the Minima for the token, then the token."""
    if not setup.owner_key:
        step("owner key from getaddress", owner_key=str(rpc.getaddress()["publickey"]))
    if not setup.tokenid:
        if settings.MNS_ENTRYPOINTS_TOKENID:
            step("token from MNS_ENTRYPOINTS_TOKENID", tokenid=settings.MNS_ENTRYPOINTS_TOKENID)
        else:
            if not setup.token_coinid:
                created = spend_when_confirmed(
                    rpc,
                    lambda: rpc.tokencreate(name=setup.token_name, amount=1, decimals=0),
                    amount=TOKEN_COLOUR,
                    confirmations=settings.MNS_CONFIRMATIONS,
                    wait=wait,
                    poll=poll,
                    progress=say,
                )
                minted = next(o for o in created["body"]["txn"]["outputs"] if o.get("token"))
                step(
                    "token created (its id is provisional until mined)",
                    provisional_tokenid=str(minted["token"]["tokenid"]),
                    token_coinid=str(minted["coinid"]),
                )
            tokenid = _wait_for(lambda: _final_tokenid(rpc, setup.token_coinid), wait, poll, "the token to be mined")
            step("token mined: its final id", tokenid=tokenid)
    if not setup.script_address:
        _register_script(setup, rpc, step)
    if not setup.first_coinid:
        _first_coin(setup, rpc, step, wait=wait, poll=poll, say=say)


def _register_script(setup: Setup, rpc: MinimaRPC, step: Callable[..., None]) -> None:
    address = str(rpc.newscript(script=BULLETIN_SCRIPT, trackall=True)["address"])
    step("bulletin script registered and tracked", script=BULLETIN_SCRIPT, script_address=address)


def _final_tokenid(rpc: MinimaRPC, coinid: str) -> str | None:
    """The mined token's id: ``tokens`` lists it, with the coin it was minted in, only once it is final."""
    for token in rpc.tokens():
        if str(token.get("coinid", "")).upper() == coinid.upper():
            return str(token["tokenid"])
    return None


def _wait_for(probe: Callable[[], Any], wait: float, poll: float, what: str) -> Any:
    deadline = time.monotonic() + wait
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise DomainError("setup_timeout", f"Gave up waiting for {what}; run entrypoints_setup again.", status=503)
        time.sleep(poll)


def _first_coin(
    setup: Setup, rpc: MinimaRPC, step: Callable[..., None], *, wait: float, poll: float, say: Callable[[str], None]
) -> None:
    existing = read_chain(rpc=rpc, setup=setup)
    if existing is not None:  # a setup that stopped after sending: adopt the coin it made
        _record_reading(existing, origin=Publication.Origin.PUBLISHED)
        step("existing bulletin coin adopted", first_coinid=existing.coinid)
        return
    publication = Publication.objects.filter(seq=1).first()
    if publication is None:
        bulletin = Bulletin(seq=1, issued_at=_now_ms(), entries=tuple(entries_choose()))
        publication = Publication.objects.create(seq=1, bulletin=bulletin.to_dict())
    bulletin = _bulletin_of(publication)
    sent = spend_when_confirmed(
        rpc,
        lambda: rpc.send_with_state(
            address=setup.script_address, amount=1, tokenid=setup.tokenid, state=bulletin.state(setup.owner_key)
        ),
        amount=Decimal(1),
        tokenid=setup.tokenid,
        confirmations=settings.MNS_CONFIRMATIONS,
        wait=wait,
        poll=poll,
        progress=say,
    )
    block = int(rpc.block()["block"])
    coinid = next(
        str(o["coinid"])
        for o in sent["body"]["txn"]["outputs"]
        if str(o["address"]).upper() == setup.script_address.upper()
    )
    Publication.objects.filter(pk=publication.pk).update(
        status=Publication.Status.SENT,
        coinid=coinid,
        txpowid=str(sent.get("txpowid", "")),
        sent_block=block,
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    step("first bulletin coin sent (seq 1)", first_coinid=coinid)
    _wait_for(lambda: read_chain(rpc=rpc, setup=setup), wait, poll, "the first bulletin coin to be mined")
    _confirm(Publication.objects.get(pk=publication.pk), rpc=rpc, setup=setup)


# ------------------------------------------------------------------------------------------------ publishing


def entries_choose(*, count: int | None = None, rng: random.Random | None = None) -> list[Entry]:
    """``count`` entries at random among the healthy permanent peers and this gateway (when its address is
    permanent). Candidates that would not pass a reader's checks are left out, with a log line."""
    pool = []
    for candidate in selectors.candidates():
        try:
            pool.append(parse_entry(candidate))
        except BulletinInvalid as exc:
            logger.warning("entry points: candidate %s left out (%s): %s", candidate.get("api_url"), exc.code, exc)
    count = settings.MNS_ENTRYPOINTS_COUNT if count is None else count
    return (rng or random.SystemRandom()).sample(pool, min(count, len(pool)))


def publication_start(*, rng: random.Random | None = None) -> Publication:
    """The publication to send now: the unfinished one if there is one (it is retried, never replaced), else a
    new list with the next seq. A new list that would be empty, or a gateway without a permanent address, is
    recorded as ``refused`` (never sent) and raises ``DomainError`` with the reason and what to do."""
    if not settings.MNS_PUBLISHER:
        raise DomainError("not_publisher", "This gateway does not publish entry points (MNS_PUBLISHER).", status=409)
    with transaction.atomic():
        setup = Setup.objects.select_for_update().filter(pk=1, completed_at__isnull=False).first()
        if setup is None or not setup.first_coinid:
            raise DomainError("not_set_up", "Run `python manage.py entrypoints_setup` first.", status=503)
        unfinished = Publication.objects.filter(status__in=UNFINISHED).order_by("seq").first()
        if unfinished is not None:
            return unfinished
        seq = (Publication.objects.aggregate(top=Max("seq"))["top"] or 0) + 1
        entries = tuple(entries_choose(rng=rng))
        # The directory's agreed root and its signers ride along (docs/protocol.md, "Transparency").
        bulletin = Bulletin(seq=seq, issued_at=_now_ms(), entries=entries, root=transparency.agreed_root())
        refusal = _refusal(entries)
        if refusal is None:
            return Publication.objects.create(seq=seq, bulletin=bulletin.to_dict())
        Publication.objects.create(
            seq=seq, bulletin=bulletin.to_dict(), status=Publication.Status.REFUSED, error=refusal.detail
        )
    logger.warning("entry points: list seq %s refused, not sent: %s", seq, refusal.detail)
    raise refusal


def _refusal(entries: tuple[Entry, ...]) -> DomainError | None:
    try:
        _permanent_address_check()
    except DomainError as exc:
        return exc
    return None if entries else DomainError("no_entries", NO_ENTRIES, status=409)


def publish_now(*, rpc: MinimaRPC, rng: random.Random | None = None) -> Publication:
    """Start (or resume) a publication and send it: what beat, the admin action and the command run."""
    publication = publication_start(rng=rng)
    if publication.status in (Publication.Status.PENDING, Publication.Status.FAILED):
        publication_send(publication_id=publication.pk, rpc=rpc)
    return Publication.objects.get(pk=publication.pk)


def publication_send(*, publication_id: int, rpc: MinimaRPC) -> bool:
    """Rotate the bulletin coin to this publication's list. True when the batch was posted (or found mined)."""
    publication = Publication.objects.get(pk=publication_id)
    setup = selectors.setup_done()
    if setup is None or publication.status not in (Publication.Status.PENDING, Publication.Status.FAILED):
        return False
    try:
        block = int(rpc.block()["block"])
        live = read_chain(rpc=rpc, setup=setup)
    except MNSError as exc:
        _fail(publication.pk, f"node: {exc}", count=True)
        return False
    if live is not None and live.bulletin.seq == publication.seq:  # an earlier attempt made it after all
        _mark_sent(publication.pk, coinid=live.coinid, block=block)
        return True
    if live is None or live.bulletin.seq > publication.seq:
        reason = "no live bulletin coin on chain" if live is None else f"the chain holds seq {live.bulletin.seq}"
        _fail(publication.pk, reason, count=True)
        return False
    if block - live.block < settings.MNS_CONFIRMATIONS:  # the node spends a coin only this deep: wait, unclaimed
        logger.info(
            "entry points: seq %s waits for %s confirmations of the bulletin coin: %s/%s",
            publication.seq,
            settings.MNS_CONFIRMATIONS,
            block - live.block,
            settings.MNS_CONFIRMATIONS,
        )
        return False
    txn_id = f"mnsep{publication.seq}a{publication.attempts + 1}"
    claimed = Publication.objects.filter(pk=publication.pk, status=publication.status).update(
        status=Publication.Status.SENT,
        attempts=F("attempts") + 1,
        txn_id=txn_id,
        input_coinid=live.coinid,
        sent_block=block,
        sent_at=timezone.now(),
        error="",
        next_attempt_at=None,
    )
    if not claimed:
        return False  # another worker is sending it
    try:
        replies = rpc.txn_rotate(
            txn_id=txn_id,
            coinid=live.coinid,
            address=setup.script_address,
            tokenid=setup.tokenid,
            amount=1,
            state=_bulletin_of(publication).state(setup.owner_key),
            owner_publickey=setup.owner_key,
        )
    except MNSError as exc:
        _fail(publication.pk, f"rotation: {exc}")
        return False
    posted = replies[-2] if len(replies) >= 2 and isinstance(replies[-2], dict) else {}
    outputs = (posted.get("body") or {}).get("txn", {}).get("outputs") or [{}]
    Publication.objects.filter(pk=publication.pk).update(
        txpowid=str(posted.get("txpowid", "")), coinid=str(outputs[0].get("coinid", ""))
    )
    logger.info("entry points: seq %s sent (txn %s)", publication.seq, txn_id)
    return True


def _mark_sent(pk: int, *, coinid: str, block: int) -> None:
    Publication.objects.filter(pk=pk).update(
        status=Publication.Status.SENT, coinid=coinid, sent_block=block, error="", next_attempt_at=None
    )


def _fail(pk: int, error: str, *, count: bool = False) -> None:
    publication = Publication.objects.get(pk=pk)
    attempts = publication.attempts + (1 if count else 0)
    delay = min(settings.MNS_ENTRYPOINTS_RETRY_SECONDS * 2 ** max(attempts - 1, 0), 3600)
    Publication.objects.filter(pk=pk).update(
        status=Publication.Status.FAILED,
        attempts=attempts,
        error=error[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    logger.warning("entry points: publication seq %s failed (retry in %ss): %s", publication.seq, delay, error)


def publications_check(*, rpc: MinimaRPC) -> dict[str, int]:
    """Beat: confirm sent publications whose coin is on chain, fail those not mined in time, retry failed ones
    that are due. Reading gateways record a newer list instead."""
    counts = {"confirmed": 0, "failed": 0, "retried": 0, "observed": 0}
    setup = selectors.setup_done()
    if setup is None:
        return counts
    if not settings.MNS_PUBLISHER:
        counts["observed"] = int(observe(rpc=rpc, setup=setup) is not None)
        return counts
    for publication in Publication.objects.filter(status=Publication.Status.SENT).order_by("seq"):
        outcome = _confirm(publication, rpc=rpc, setup=setup)
        if outcome:
            counts[outcome] += 1
    waiting = Q(status=Publication.Status.PENDING)  # e.g. for the bulletin coin to be deep enough
    due = Q(status=Publication.Status.FAILED, next_attempt_at__lte=timezone.now())
    for publication in Publication.objects.filter(waiting | due).order_by("seq"):
        counts["retried"] += int(publication_send(publication_id=publication.pk, rpc=rpc))
    return counts


def _confirm(publication: Publication, *, rpc: MinimaRPC, setup: Setup) -> str | None:
    try:
        block = int(rpc.block()["block"])
        live = read_chain(rpc=rpc, setup=setup)
    except MNSError as exc:
        logger.info("entry points: cannot confirm seq %s yet: %s", publication.seq, exc)
        return None
    if live is not None and live.bulletin.seq == publication.seq:
        if block - live.block + 1 < settings.MNS_ENTRYPOINTS_CONFIRMATIONS:
            return None
        with transaction.atomic():
            Publication.objects.filter(pk=publication.pk, status=Publication.Status.SENT).update(
                status=Publication.Status.CONFIRMED, coinid=live.coinid, block=live.block, confirmed_at=timezone.now()
            )
            _root_seen(live.bulletin)
        logger.info("entry points: seq %s confirmed in block %s (coin %s)", publication.seq, live.block, live.coinid)
        return "confirmed"
    if publication.sent_block is not None and block > publication.sent_block + settings.MNS_ENTRYPOINTS_MINE_BLOCKS:
        _fail(publication.pk, f"not mined {settings.MNS_ENTRYPOINTS_MINE_BLOCKS} blocks after it was sent")
        return "failed"
    return None


# ------------------------------------------------------------------------------------------------------ reading


def read_chain(*, rpc: MinimaRPC, setup: Setup, min_seq: int = 0) -> Reading | None:
    """The newest acceptable bulletin the node sees at the script address (refusals are logged)."""
    coins = rpc.coins(address=setup.script_address, tokenid=setup.tokenid)
    return newest_bulletin(
        coins, address=setup.script_address, tokenid=setup.tokenid, owner=setup.owner_key, min_seq=min_seq
    )


def observe(*, rpc: MinimaRPC, setup: Setup) -> Publication | None:
    """A reading gateway: record the chain's list when it is newer than the newest one known here."""
    newest = Publication.objects.filter(status=Publication.Status.CONFIRMED).aggregate(top=Max("seq"))["top"] or 0
    try:
        reading = read_chain(rpc=rpc, setup=setup, min_seq=newest)
    except MNSError as exc:
        logger.info("entry points: cannot read the chain: %s", exc)
        return None
    if reading is None or reading.bulletin.seq <= newest:
        return None
    return _record_reading(reading, origin=Publication.Origin.OBSERVED)


def _root_seen(bulletin: Bulletin) -> None:
    if bulletin.root is not None:
        chain_root_seen(bulletin_seq=bulletin.seq, signed=bulletin.root)


@transaction.atomic
def _record_reading(reading: Reading, *, origin: str) -> Publication:
    _root_seen(reading.bulletin)
    publication, _ = Publication.objects.update_or_create(
        seq=reading.bulletin.seq,
        defaults={
            "bulletin": reading.bulletin.to_dict(),
            "origin": origin,
            "status": Publication.Status.CONFIRMED,
            "coinid": reading.coinid,
            "block": reading.block,
            "confirmed_at": timezone.now(),
        },
    )
    return publication


def _bulletin_of(publication: Publication) -> Bulletin:
    raw = publication.bulletin
    entries = tuple(Entry(**entry) for entry in raw.get("entries") or [])
    root = SignedRoot.from_dict(raw["root"]) if raw.get("root") else None
    return Bulletin(seq=int(raw["seq"]), issued_at=int(raw["issued_at"]), entries=entries, root=root)
