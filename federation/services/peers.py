"""The peers of this gateway: who they are, whether they are heard from, paused, or misbehaving."""

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import DomainError
from federation import selectors
from federation.models import Peer, PeerLagSample
from maxima.routing import Ignored, InboundMessage
from maxima.selectors import gateway_identity_key
from maxima.services import outbound_enqueue, outbound_nudge
from mns_client.protocol import sync
from mns_client.protocol.codecs import canonical_public_key, parse_address
from mns_client.protocol.errors import CodecError

logger = logging.getLogger(__name__)


def peer_upsert(
    *, name: str, identity_key: str, address: str, api_url: str = "", permanent: bool = False, enabled: bool = True
) -> tuple[Peer, bool]:
    """Add a peer, or change the one of that name (idempotent: the same arguments again change nothing)."""
    try:
        key = canonical_public_key(identity_key)
    except CodecError:
        raise DomainError(
            "peer_key_invalid", "The identity key is not a Maxima public key (0x… hex of the DER)."
        ) from None
    try:
        parsed = parse_address(address)
    except CodecError as exc:
        raise DomainError("peer_address_invalid", f"Not a Maxima address (MAX#… or Mx…@host:port): {exc}") from None
    if permanent and not str(parsed).startswith("MAX#"):
        raise DomainError("peer_address_invalid", "A permanent address is a MAX#… address.")
    with transaction.atomic():
        clash = Peer.objects.filter(identity_key=key).exclude(name=name).first()
        if clash is not None:
            raise DomainError("peer_key_taken", f"The peer {clash.name!r} has this identity key.", status=409)
        peer, created = Peer.objects.update_or_create(
            name=name,
            defaults={
                "identity_key": key,
                "address": str(parsed),
                "api_url": api_url,
                "permanent": permanent,
                "enabled": enabled,
            },
        )
    logger.info("%s peer %s", "added" if created else "updated", name)
    return peer, created


def peer_remove(*, name: str) -> bool:
    deleted, _ = Peer.objects.filter(name=name).delete()
    return bool(deleted)


def peer_pause(*, peer_id: int, reason: str) -> bool:
    """Stop talking to a peer (staff, or too many invalid operations); its messages are refused until resumed."""
    paused = Peer.objects.filter(id=peer_id, paused=False).update(
        paused=True, paused_reason=reason[:2000], paused_at=timezone.now()
    )
    if paused:
        logger.warning("paused peer %s: %s", peer_id, reason)
    return bool(paused)


def peer_resume(*, peer_id: int) -> bool:
    """Talk to a paused peer again, with its invalid-operation count reset."""
    resumed = Peer.objects.filter(id=peer_id, paused=True).update(
        paused=False, paused_reason="", paused_at=None, invalid_ops=0
    )
    if resumed:
        logger.info("resumed peer %s", peer_id)
    return bool(resumed)


def self_key() -> str | None:
    """This gateway's own identity key (the origin of its operations), once its node reported it."""
    return gateway_identity_key()


def _short(key: str) -> str:
    """A short, stable tag of a key for idempotency keys (they are at most 200 characters)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _send(peer: Peer, body: dict[str, Any], idempotency_key: str) -> None:
    outbound_enqueue(
        destination=peer.address,
        application=sync.APPLICATION,
        payload=sync.encode(body),
        idempotency_key=idempotency_key,
    )


def peer_heard(*, message: InboundMessage) -> Peer:
    """The enabled, unpaused peer that sent ``message`` (Maxima verified its ``from``), now marked as heard from;
    ``Ignored`` (nothing written) for anyone else."""
    try:
        peer = selectors.peer_of_key(key=canonical_public_key(message.sender))
    except CodecError:
        peer = None
    if peer is None:
        raise Ignored("mns-sync from a key that is not an enabled peer")
    if peer.paused:
        raise Ignored(f"mns-sync from the paused peer {peer.name}")
    Peer.objects.filter(id=peer.id).update(last_heard_at=timezone.now())
    if nudged := outbound_nudge(destination=peer.address):
        logger.info("peer %s answers again: sending its %s waiting message(s) now", peer.name, nudged)
    return peer


def invalid_count(*, peer: Peer, count: int, why: str) -> None:
    """Count invalid operations against a peer; past ``MNS_FEDERATION_PAUSE_AFTER_INVALID`` it is paused."""
    Peer.objects.filter(id=peer.id).update(invalid_ops=F("invalid_ops") + count)
    peer.refresh_from_db(fields=["invalid_ops", "paused"])
    logger.warning("peer %s sent %s invalid operation(s): %s", peer.name, count, why)
    if peer.invalid_ops >= settings.MNS_FEDERATION_PAUSE_AFTER_INVALID and not peer.paused:
        peer_pause(peer_id=peer.id, reason=f"{peer.invalid_ops} invalid operations; the last: {why}")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


LAG_SAMPLES_KEPT = timedelta(hours=48)


def peer_lag_sample(*, every: int, now: datetime | None = None) -> int:
    """Record every enabled peer's lag, unless samples were taken less than ``every`` seconds ago; drop samples
    older than 48 hours. Returns how many were written (safe to run twice: at worst two close together)."""
    now = now or timezone.now()
    if PeerLagSample.objects.filter(at__gt=now - timedelta(seconds=every), at__lte=now).exists():
        return 0
    rows = [
        PeerLagSample(peer=peer, at=now, lag_ops=peer.lag_ops, lag_seconds=round(selectors.lag_seconds(peer), 1))
        for peer in Peer.objects.filter(enabled=True)
    ]
    PeerLagSample.objects.bulk_create(rows)
    PeerLagSample.objects.filter(at__lt=now - LAG_SAMPLES_KEPT).delete()
    return len(rows)
