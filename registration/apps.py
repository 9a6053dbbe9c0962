from django.apps import AppConfig


class RegistrationConfig(AppConfig):
    """The registration flow. It owns no rows: it writes through the registry, handshake, federation and mailboxes
    services, and registers with the lower apps what they call back when the flow moves on."""

    name = "registration"
    verbose_name = "Registration"

    def ready(self) -> None:
        from federation import services as federation
        from handshake.services import register_completion
        from maxima.routing import register_type
        from registration import handlers, services

        register_type("mns", "register", handlers.register_received)
        register_completion("register", services.handshake_verified)
        federation.register_outcomes(
            federation.Outcomes(confirmed=services.claim_confirmed, refused=services.claim_refused)
        )
