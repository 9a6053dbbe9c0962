import uuid
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings

from mns_site.maxima import selectors, services
from mns_site.maxima.node import node_client
from mns_site.queue import enqueue_now


@shared_task(bind=True, name="maxima.process_inbound", ignore_result=True)
def process_inbound(self: Task, event_id: int) -> str:
    # The task id is the claim: the same message redelivered after its worker died may take its claim back.
    return services.inbound_process(event_id=event_id, claim=self.request.id or uuid.uuid4().hex)


@shared_task(name="maxima.send_outbound", ignore_result=True)
def send_outbound(message_id: int) -> str:
    # A send may take the node 20 s to connect plus up to 15 s to mine its TxPoW: wait for the real answer.
    client = node_client(timeout=max(settings.MINIMA_RPC_TIMEOUT, 45))
    return services.outbound_send(message_id=message_id, client=client)


@shared_task(name="maxima.sweep_inbound", ignore_result=True)
def sweep_inbound() -> int:
    """Beat: enqueue events whose task was lost (broker down at the time, worker killed)."""
    due = selectors.inbound_due(limit=500)
    for event_id in due:
        enqueue_now(process_inbound, event_id)
    return len(due)


@shared_task(name="maxima.sweep_outbound", ignore_result=True)
def sweep_outbound() -> int:
    """Beat: enqueue messages due for a (re)try."""
    due = selectors.outbound_due(limit=500)
    for message_id in due:
        enqueue_now(send_outbound, message_id)
    return len(due)


@shared_task(name="maxima.supervise_node", ignore_result=True)
def supervise_node() -> bool:
    if not settings.MINIMA_RPC_URL:
        return False
    return services.node_supervise(client=node_client(timeout=10)).reachable


@shared_task(name="maxima.purge", ignore_result=True)
def purge() -> tuple[int, int]:
    """Beat: drop finished transport rows after MNS_TRANSPORT_KEEP_HOURS."""
    return services.transport_purge(older_than=timedelta(hours=settings.MNS_TRANSPORT_KEEP_HOURS))
