"""The Celery app. Tasks load by id, call one service, and are safe to run twice (the broker may redeliver)."""

import os
import time

from celery import Celery
from celery.beat import PersistentScheduler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")

app = Celery("mns_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class HeartbeatScheduler(PersistentScheduler):
    """The ordinary persistent scheduler, which also records that beat is alive, for the health endpoint."""

    _last_beat = 0.0

    def tick(self, *args: object, **kwargs: object) -> float:
        now = time.monotonic()
        if now - self._last_beat >= 5:
            from mns_site.services import heartbeat_record

            heartbeat_record(name="beat")
            self._last_beat = now
        return super().tick(*args, **kwargs)


@app.on_after_configure.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    every = {
        "mns_site.tasks.heartbeat": settings.CELERY_HEARTBEAT_EVERY,
        "maxima.supervise_node": settings.MNS_NODE_CHECK_EVERY,
        "maxima.sweep_inbound": settings.MNS_SWEEP_EVERY,
        "maxima.sweep_outbound": settings.MNS_SWEEP_EVERY,
        "maxima.purge": 3600,
        "handshake.clean": 300,
        "mailboxes.expire": settings.MNS_MESSAGE_EXPIRE_EVERY,
        "federation.sync": settings.MNS_FEDERATION_SYNC_EVERY,
        "entrypoints.publish": settings.MNS_ENTRYPOINTS_EVERY * 3600,
        "entrypoints.check": settings.MNS_ENTRYPOINTS_CHECK_EVERY,
    }
    for task, seconds in every.items():
        # Expiring at the next run: a backlog of identical sweeps after an outage would only repeat one another.
        sender.add_periodic_task(seconds, sender.signature(task, options={"expires": seconds}), name=task)
