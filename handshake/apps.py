from django.apps import AppConfig


class HandshakeConfig(AppConfig):
    name = "handshake"
    verbose_name = "Handshakes and sessions"

    def ready(self) -> None:
        from handshake import handlers
        from maxima.routing import register_type

        register_type("mns", "handshake", handlers.answer_received)
