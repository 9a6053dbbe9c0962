from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation (peers, claims, replication)"

    def ready(self) -> None:
        from celery.signals import worker_ready

        from core import health
        from federation import handlers, selectors, services
        from maxima.routing import register_type
        from maxima.services import on_outbound_sent

        for message_type, handler in handlers.HANDLERS.items():
            register_type("mns-sync", message_type, handler)
        on_outbound_sent("fed-ops:", services.ops_batch_sent)
        worker_ready.connect(_sync_at_start, weak=False)
        health.register("log", selectors.log_check, critical=False, applies=selectors.has_log)
        health.register(
            "peers", selectors.peers_check, critical=False, applies=selectors.has_peers, report=selectors.peers_report
        )


def _sync_at_start(**kwargs: object) -> None:
    """A worker that (re)starts pushes and pulls at once, rather than at the next beat round: a gateway back from
    an outage catches up without waiting for its beat."""
    from core.queue import enqueue_now
    from federation.tasks import sync

    enqueue_now(sync)
