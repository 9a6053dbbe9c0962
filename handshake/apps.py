from django.apps import AppConfig


class HandshakeConfig(AppConfig):
    name = "handshake"
    verbose_name = "Handshakes and sessions"

    def ready(self) -> None:
        from handshake import authentication, handlers
        from maxima.routing import register_type
        from registry.gates import register_session_check

        register_type("mns", "handshake", handlers.answer_received)
        register_session_check(authentication.require_session)
