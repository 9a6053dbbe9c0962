from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Name registry"

    def ready(self) -> None:
        from core import fastpath
        from maxima.routing import register_type
        from onchain import services as onchain_services
        from registry import handlers, published, replication, views

        register_type("mns", "statement", handlers.statement_received)
        replication.register()
        # What a lookup says of a name on chain is part of its cached answer: changing it drops the answer.
        onchain_services.register_change_guard(published.changing)
        # A lookup of a name whose answer is in Redis is answered before DRF (the same answer, fewer steps).
        fastpath.register("registry:name", views.lookup_early, argument="name")
