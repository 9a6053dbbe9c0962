from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Name registry"

    def ready(self) -> None:
        from maxima.routing import register_type
        from registry import handlers, replication

        register_type("mns", "statement", handlers.statement_received)
        replication.register()
