from celery import shared_task

from core.services import heartbeat_record


@shared_task(name="core.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Scheduled by beat and run by a worker: a fresh worker heartbeat proves beat, broker and worker all work."""
    heartbeat_record(name="worker")


@shared_task(name="core.heartbeat_sends", ignore_result=True)
def heartbeat_sends() -> None:
    """``heartbeat`` on the sends' queue (``core.processes.SENDS_QUEUE``): fresh, it proves a worker takes the sends."""
    heartbeat_record(name="sender")
