"""Claims of new names across the membership, and the leases this gateway gives for them."""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from federation import selectors
from federation.models import Claim, Lease, Peer
from federation.services.peers import _ms, _send, _short, self_key
from mns_client.protocol import sync
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.errors import CodecError
from mns_client.protocol.names import NameRefused, normalise
from mns_client.protocol.names import skeleton as skeleton_of

logger = logging.getLogger(__name__)


def claim_start(*, name: str, skeleton: str, owner_key: str) -> Claim | None:
    """Claim a newly held name across the membership (the enabled, unpaused peers and this gateway).

    Runs in the registration's transaction, right after the local hold. This gateway takes its own lease first
    (refused at once, ``name_taken``, when it holds another owner's lease on the name or a look-alike); the
    ``claim`` goes to every peer through the outbox. With no peer the membership is this gateway alone: nothing
    is written and the name is confirmed as before. The same owner registering the same name again while a claim
    is open or confirmed re-uses that claim.
    """
    peers = list(selectors.peers_active())
    if not peers:
        return None
    me, now = self_key(), timezone.now()
    current = selectors.claim_for_name(name=name)
    if (
        current is not None
        and current.owner_key == owner_key
        and current.status in (Claim.Status.OPEN, Claim.Status.CONFIRMED)
        and current.expires_at > now
    ):
        return current
    claim = Claim(
        claim_id=secrets.token_urlsafe(18),
        name=name,
        skeleton=skeleton,
        owner_key=owner_key,
        membership=len(peers) + 1,
        asked=[peer.identity_key for peer in peers],
        acks=[me],
        expires_at=now + timedelta(seconds=settings.MNS_FEDERATION_CLAIM_SECONDS),
    )
    refusal = _lease_take(claimant=me, claim=claim)
    if refusal is not None:
        raise NameRefused("name_taken", f"the name {name!r} is being claimed at another gateway")
    claim.save()
    body = sync.message(
        "claim",
        claim_id=claim.claim_id,
        name=claim.name,
        skeleton=claim.skeleton,
        owner=claim.owner_key,
        expires_at=_ms(claim.expires_at),
    )
    for peer in peers:
        _send(peer, body, f"fed-claim:{claim.claim_id}:{_short(peer.identity_key)}")
    logger.info("claimed %s across %s gateways", claim.name, claim.membership)
    return claim


def _lease_take(*, claimant: str, claim: Claim) -> str | None:
    """Ack ``claim`` as a lease on its skeleton, or say why not (``None``: acked).

    Acked only if this gateway knows no other owner of the name or a look-alike (a live record, a reserved
    name) and holds no live lease of another owner; the same owner claiming again is acked without a second
    lease. The database allows one holding lease per skeleton: of two concurrent claims one inserts, and the
    other, retried once, sees it and is refused. An expired lease is marked so first.
    """
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _lease_decide(claimant, claim)
        except IntegrityError:
            if attempt == 2:
                return "claimed"
    return "claimed"


def _lease_decide(claimant: str, claim: Claim) -> str | None:
    now = timezone.now()
    existing = Lease.objects.filter(claim_id=claim.claim_id).first()
    if existing is not None:
        return None if existing.status in Lease.HOLDING else existing.status
    Lease.objects.filter(skeleton=claim.skeleton, status__in=Lease.HOLDING, expires_at__lte=now).update(
        status=Lease.Status.EXPIRED
    )
    if _names().taken(claim.skeleton, claim.owner_key):
        return "name_taken"
    holding = Lease.objects.filter(skeleton=claim.skeleton, status__in=Lease.HOLDING).first()
    if holding is not None:
        return None if holding.owner_key == claim.owner_key else "claimed"
    if _names().owner_full(claim.owner_key, claim.name):
        return "owner_limit_reached"
    Lease.objects.create(
        claim_id=claim.claim_id,
        claimant=claimant,
        name=claim.name,
        skeleton=claim.skeleton,
        owner_key=claim.owner_key,
        expires_at=claim.expires_at,
    )
    return None


def claim_received(*, peer: Peer, body: dict[str, Any]) -> str | None:
    """A peer's ``claim``: ack it as a lease, or nack it with the reason; the answer goes back over Maxima."""
    claim_id = body["claim_id"]
    try:
        name = normalise(body["name"])
        owner = canonical_public_key(body["owner"])
        if name != body["name"]:
            raise NameRefused("name_invalid", "not a name in normal form")
    except (NameRefused, CodecError):
        reason: str | None = "claim_invalid"
    else:
        cap = timezone.now() + timedelta(seconds=settings.MNS_FEDERATION_CLAIM_SECONDS)
        expires = min(datetime.fromtimestamp(body["expires_at"] / 1000, tz=UTC), cap)
        claim = Claim(claim_id=claim_id, name=name, skeleton=skeleton_of(name), owner_key=owner, expires_at=expires)
        reason = _lease_take(claimant=peer.identity_key, claim=claim)
    if reason is None:
        _send(peer, sync.message("claim-ack", claim_id=claim_id), f"fed-claim-reply:{claim_id}")
    else:
        _send(peer, sync.message("claim-nack", claim_id=claim_id, reason=reason), f"fed-claim-reply:{claim_id}")
    logger.info("claim of %s by %s: %s", body["name"][:32], peer.name, reason or "acked")
    return reason


def claim_answered(*, peer: Peer, claim_id: str, ack: bool) -> str:
    """A peer's ``claim-ack``/``claim-nack``: count it once, and decide the claim as soon as it can be decided.

    Confirmed on a majority of the membership (this gateway's own ack included); refused (``name_taken``) as soon
    as a majority can no longer be reached. Returns the claim's status (``ignored`` for an unknown claim).
    """
    with transaction.atomic():
        _name_lock(Claim.objects.filter(claim_id=claim_id).values_list("name", flat=True).first())
        claim = Claim.objects.select_for_update().filter(claim_id=claim_id).first()
        if claim is None or peer.identity_key not in claim.asked:
            return "ignored"
        if claim.status != Claim.Status.OPEN or peer.identity_key in claim.acks + claim.nacks:
            return claim.status
        (claim.acks if ack else claim.nacks).append(peer.identity_key)
        claim.save(update_fields=["acks", "nacks"])
        if len(claim.acks) >= claim.majority:
            _claim_confirm(claim)
        elif len(claim.nacks) > claim.membership - claim.majority:
            _claim_refuse(claim, Claim.Status.REFUSED, "name_taken")
        return claim.status


def _name_lock(name: str | None) -> None:
    """Lock the name's row FOR NO KEY UPDATE before a claim of it: the answer to a ``register`` handshake locks the
    name, then its challenge, then the claim (``claim_allows_confirm``); deciding a claim takes the same order (the
    name first), or the two deadlock. Does not block a session pickup's key-share lock on the row."""
    if name is not None:
        _names().lock(name)


def _claim_confirm(claim: Claim) -> None:
    now = timezone.now()
    claim.status, claim.decided_at = Claim.Status.CONFIRMED, now
    claim.save(update_fields=["status", "decided_at"])
    _lease_commit(claim.claim_id)
    _claim_tell(claim, "commit")
    logger.info("the network confirmed the claim of %s (%s of %s)", claim.name, len(claim.acks), claim.membership)
    if claim.answered_challenge:
        _registrations().confirmed(claim.answered_challenge)


def _claim_refuse(claim: Claim, status: str, code: str) -> None:
    claim.status, claim.decided_at = status, timezone.now()
    claim.save(update_fields=["status", "decided_at"])
    Lease.objects.filter(claim_id=claim.claim_id, status__in=Lease.HOLDING).update(status=Lease.Status.ABORTED)
    _claim_tell(claim, "abort")
    _registration_refuse(name=claim.name, owner_key=claim.owner_key, code=code)
    logger.info("the claim of %s was %s (%s)", claim.name, status, code)


def _claim_tell(claim: Claim, message_type: str) -> None:
    body = sync.message(message_type, claim_id=claim.claim_id)
    for peer in Peer.objects.filter(identity_key__in=claim.asked, enabled=True):
        _send(peer, body, f"fed-{message_type}:{claim.claim_id}:{_short(peer.identity_key)}")


def _registration_refuse(*, name: str, owner_key: str, code: str) -> None:
    _registrations().refused(name, owner_key, code)


def _lease_commit(claim_id: str) -> int:
    """A committed lease keeps refusing other owners until the name's statement arrives (or the hold time ends)."""
    until = timezone.now() + timedelta(seconds=settings.MNS_NAME_HOLD_SECONDS)
    return Lease.objects.filter(claim_id=claim_id, status=Lease.Status.LIVE).update(
        status=Lease.Status.COMMITTED, expires_at=until
    )


def claim_finished(*, peer: Peer, claim_id: str, committed: bool) -> int:
    """A claimant's ``commit`` or ``abort`` for the lease this gateway gave it (another gateway's is left alone)."""
    leases = Lease.objects.filter(claim_id=claim_id, claimant=peer.identity_key)
    if committed:
        return _lease_commit(claim_id) if leases.exists() else 0
    return leases.filter(status__in=Lease.HOLDING).update(status=Lease.Status.ABORTED)


def claim_allows_confirm(*, name: str, owner_key: str, challenge_id: str) -> bool:
    """Whether the owner's answered ``register`` handshake may confirm the name now.

    Yes without a claim (no peers when it was held) or once it is confirmed. While it is open the answer is noted,
    and the claim's confirmation finishes the registration (whichever comes last finishes it). Never after a
    refusal or expiry.
    """
    with transaction.atomic():
        claim = Claim.objects.select_for_update().filter(name=name, owner_key=owner_key).order_by("-id").first()
        if claim is None or claim.status == Claim.Status.CONFIRMED:
            return True
        if claim.status == Claim.Status.OPEN:
            Claim.objects.filter(id=claim.id).update(answered_challenge=challenge_id)
            logger.info("%s: handshake answered, waiting for the network's answer to the claim", name)
        return False


def claims_expire() -> tuple[int, int]:
    """Expire open claims past their time (their registrations refused, ``claim_expired``) and expired leases."""
    now, expired = timezone.now(), 0
    due = Claim.objects.filter(status=Claim.Status.OPEN, expires_at__lte=now).values_list("id", "name")
    for claim_id, name in due:
        with transaction.atomic():
            _name_lock(name)
            claim = Claim.objects.select_for_update().filter(id=claim_id, status=Claim.Status.OPEN).first()
            if claim is not None:
                _claim_refuse(claim, Claim.Status.EXPIRED, "claim_expired")
                expired += 1
    leases = Lease.objects.filter(status__in=Lease.HOLDING, expires_at__lte=now).update(status=Lease.Status.EXPIRED)
    return expired, leases


# ------------------------------------------------------------------------------------ what claims are about
# Federation decides claims; the names and the registrations they are about belong to higher apps, which
# register here (``registry`` the name space, the registration flow its outcomes), in their ``AppConfig.ready``.


@dataclass(frozen=True)
class NameSpace:
    """What a claim asks of the local name registry."""

    lock: Callable[[str], None]  # lock the name's row FOR NO KEY UPDATE (the lock order of every name change)
    taken: Callable[[str, str], bool]  # (skeleton, owner): a live record of another owner, or a reserved name
    owner_full: Callable[[str, str], bool]  # (owner, name): the owner holds its limit of other names


@dataclass(frozen=True)
class Outcomes:
    """What happens to a registration when the network decides its claim."""

    confirmed: Callable[[str], None]  # the id of the answered register challenge: finish the registration
    refused: Callable[[str, str, str], None]  # (name, owner, code): the registration fails with the code


_hooks: dict[str, Any] = {}


def register_name_space(space: NameSpace) -> None:
    _hooks["names"] = space


def register_outcomes(outcomes: Outcomes) -> None:
    _hooks["outcomes"] = outcomes


def _names() -> NameSpace:
    return _hooks["names"]


def _registrations() -> Outcomes:
    return _hooks["outcomes"]


def hold_lose(*, name: str, owner_key: str) -> None:
    """A confirmed register of ``name`` from the network beats this gateway's local hold for ``owner_key`` that
    still waits for its claim: the claim is refused (``name_taken``), or, without one, the registration is."""
    _name_lock(name)
    claim = Claim.objects.select_for_update().filter(name=name, owner_key=owner_key, status=Claim.Status.OPEN)
    claim = claim.order_by("-id").first()
    if claim is not None:
        _claim_refuse(claim, Claim.Status.REFUSED, "name_taken")
    else:
        _registration_refuse(name=name, owner_key=owner_key, code="name_taken")
