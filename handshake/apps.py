from django.apps import AppConfig


class HandshakeConfig(AppConfig):
    name = "handshake"
    verbose_name = "Handshakes and sessions"

    def ready(self) -> None:
        from core import fastpath
        from handshake import authentication, handlers, views
        from maxima.routing import register_type
        from registry.gates import register_session_check

        register_type("mns", "handshake", handlers.answer_received)
        register_session_check(authentication.require_session)
        # A handshake's state, which its client polls until the owner's node answered, is answered before DRF.
        fastpath.register_admitted("handshake:challenge", views.challenge_early, arguments=("challenge_id",))
