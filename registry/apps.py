from django.apps import AppConfig
from django.conf import settings


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Name registry"

    def ready(self) -> None:
        from maxima.routing import register_type
        from mns_site.celery import app
        from registry import handlers, replication, tasks

        register_type("mns", "statement", handlers.statement_received)
        replication.register()
        app.add_periodic_task(
            60.0,
            tasks.name_holds_expire.s(seconds=settings.MNS_NAME_HOLD_SECONDS),
            name="registry.name_holds_expire",
        )
