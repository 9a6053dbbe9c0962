import uuid
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings

from core.queue import enqueue_now, enqueue_on_commit
from maxima import selectors, services, timing
from maxima.models import InboundEvent
from maxima.node import node_client, node_urls, require_node


@shared_task(bind=True, name="maxima.process_inbound", ignore_result=True)
def process_inbound(self: Task, event_id: int) -> str:
    # The task id is the claim: the same message redelivered after its worker died may take its claim back.
    return services.inbound_process(event_id=event_id, claim=self.request.id or uuid.uuid4().hex)


@shared_task(bind=True, name="maxima.process_inbound_batch", ignore_result=True)
def process_inbound_batch(self: Task) -> dict[str, int]:
    """Process what is pending, ``MNS_INBOUND_BATCH`` events at a time (enqueued by the hook, coalesced per window,
    and by the sweep). The task id is the claim, as for ``process_inbound``."""
    claim = self.request.id or uuid.uuid4().hex
    outcomes = services.inbound_process_batch(claim=claim, limit=settings.MNS_INBOUND_BATCH)
    if outcomes[InboundEvent.Status.PENDING]:  # a transient error (a deadlock between two batches, a blink): soon again
        enqueue_now(process_inbound_batch, countdown=RETRY_TRANSIENT_SECONDS)
    elif outcomes[services.UNFINISHED]:  # out of time with more due: another task takes it now, not the sweep later
        enqueue_now(process_inbound_batch)
    return dict(outcomes)


RETRY_TRANSIENT_SECONDS = 1


@shared_task(name="maxima.send_outbound", ignore_result=True)
def send_outbound(message_id: int, size: int = 0) -> str:
    # A send may take the node a while (a big message seconds, maxima.timing); it waits for the real answer, but
    # no longer than its task may run (enqueue_send gave the task the limits of its size): a send that timed out
    # is retried with backoff (the receiver drops a copy that arrives twice, by its delivery id).
    # The node is picked once the message is claimed (node.send_node: spread over the pool, a retry on the next).
    require_node()
    return services.outbound_send(message_id=message_id, timeout=timing.send_limits(size).timeout)


@shared_task(name="maxima.send_outbound_batch", ignore_result=True)
def send_outbound_batch(destination: str, application: str) -> int:
    """Send the batchable messages due to ``destination`` together (enqueued per destination and window); when more
    are due once it is sent (a full batch, or what came while it was in flight), it enqueues the next one at once."""
    require_node()
    timeout = timing.send_limits(timing.BATCH_BYTES).timeout
    sent, more = services.outbound_send_batch(destination=destination, application=application, timeout=timeout)
    if more:
        enqueue_now(send_outbound_batch, destination, application)
    return sent


def enqueue_send(message_id: int, size: int, *, on_commit: bool = True) -> bool:
    """Enqueue the send of an outbound message of ``size`` bytes with the time limits of its size."""
    limits = timing.send_limits(size)
    options = {"soft_time_limit": limits.soft, "time_limit": limits.hard}
    if on_commit:
        enqueue_on_commit(send_outbound, message_id, size, **options)
        return True
    return enqueue_now(send_outbound, message_id, size, **options)


@shared_task(name="maxima.sweep_inbound", ignore_result=True)
def sweep_inbound() -> int:
    """Beat: enqueue events whose task was lost (broker down at the time, worker killed), in a bounded batch."""
    due = selectors.inbound_due(limit=500)
    # One batch task per MNS_INBOUND_BATCH due events (each claims whatever is pending or abandoned, oldest first).
    # Only what was really enqueued counts as enqueued (with the broker down, the next sweep tries again).
    size = settings.MNS_INBOUND_BATCH
    enqueued: list[int] = []
    for start in range(0, len(due), size):
        if enqueue_now(process_inbound_batch):
            enqueued += due[start : start + size]
    services.sweep_mark_enqueued(inbound=enqueued)
    return len(enqueued)


@shared_task(name="maxima.sweep_outbound", ignore_result=True)
def sweep_outbound() -> int:
    """Beat: enqueue messages due for a (re)try; and sample the queues for the admin's charts (every
    MNS_SAMPLE_EVERY seconds, one small row)."""
    due = selectors.outbound_due(limit=500)
    sizes = selectors.outbound_sizes(due)
    enqueued = [message_id for message_id in due if enqueue_send(message_id, sizes.get(message_id, 0), on_commit=False)]
    services.sweep_mark_enqueued(outbound=enqueued)
    services.queue_sample(every=settings.MNS_SAMPLE_EVERY)
    return len(enqueued)


@shared_task(name="maxima.supervise_node", ignore_result=True)
def supervise_node() -> bool:
    """Beat: each node of the pool checked (status, identity, webhook) and recorded; whether the identity node is
    usable."""
    states = [services.node_supervise(client=node_client(timeout=10, node=n), node=n) for n in _numbers()]
    return bool(states) and states[0].reachable


def _numbers() -> range:
    return range(1, len(node_urls()) + 1)


@shared_task(name="maxima.purge", ignore_result=True)
def purge() -> tuple[int, int]:
    """Beat: drop finished transport rows after MNS_TRANSPORT_KEEP_HOURS."""
    return services.transport_purge(older_than=timedelta(hours=settings.MNS_TRANSPORT_KEEP_HOURS))
