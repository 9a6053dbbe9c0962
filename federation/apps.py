from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    verbose_name = "Federation (peers, claims, replication)"

    def ready(self) -> None:
        from federation import handlers
        from mns_site.maxima.routing import register_type

        for message_type, handler in handlers.HANDLERS.items():
            register_type("mns-sync", message_type, handler)
