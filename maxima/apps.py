from django.apps import AppConfig
from django.conf import settings


class MaximaConfig(AppConfig):
    name = "maxima"
    label = "maxima"
    verbose_name = "Maxima link"

    def ready(self) -> None:
        from core import health, wellknown
        from maxima import selectors
        from maxima.node import node_health

        # A gateway without a node serves the API but cannot speak Maxima: then there is no node part.
        health.register("node", node_health, critical=True, applies=lambda: bool(settings.MINIMA_RPC_URL))
        health.register("address", selectors.address_check, critical=False, applies=selectors.has_permanent_address)
        wellknown.register("maxima", selectors.gateway_identity)
