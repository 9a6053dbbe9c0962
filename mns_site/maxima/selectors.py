from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mns_site.maxima.models import InboundEvent, NodeState, OutboundMessage


def node_state() -> NodeState | None:
    return NodeState.objects.filter(pk=1).first()


def gateway_identity_key() -> str | None:
    """This gateway's Maxima identity key ("0x…"), as its node last reported it."""
    state = node_state()
    return state.publickey if state and state.publickey else None


def gateway_address() -> str | None:
    """The address users send to: the configured permanent one, else the node's stable p2pidentity.

    Never ``contact``: it is chosen at random among the node's hosts on every call.
    """
    if settings.MNS_MAXIMA_ADDRESS:
        return settings.MNS_MAXIMA_ADDRESS
    state = node_state()
    if state is None:
        return None
    return state.p2pidentity or state.localidentity or None


def inbound_due(*, limit: int) -> list[int]:
    """Events a worker should (re)process: pending ones the queue may have lost, and claims that went stale."""
    now = timezone.now()
    lost_after = timedelta(seconds=settings.MNS_INBOUND_SWEEP_AFTER_SECONDS)
    pending = Q(status=InboundEvent.Status.PENDING, received_at__lt=now - lost_after)
    abandoned = Q(status=InboundEvent.Status.PROCESSING, claimed_at__lt=now - inbound_lease())
    return list(InboundEvent.objects.filter(pending | abandoned).order_by("id").values_list("id", flat=True)[:limit])


def outbound_due(*, limit: int) -> list[int]:
    now = timezone.now()
    queued = Q(status=OutboundMessage.Status.QUEUED, next_attempt_at__lte=now)
    abandoned = Q(status=OutboundMessage.Status.SENDING, claimed_at__lt=now - outbound_lease())
    return list(
        OutboundMessage.objects.filter(queued | abandoned)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )


def inbound_lease() -> timedelta:
    """After this long a claimed event whose worker died is taken over (longer than any task may run)."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def outbound_lease() -> timedelta:
    return timedelta(seconds=3 * settings.MINIMA_RPC_TIMEOUT + 60)
