from django.apps import AppConfig
from django.conf import settings


class MaximaConfig(AppConfig):
    name = "maxima"
    label = "maxima"
    verbose_name = "Maxima link"

    def ready(self) -> None:
        from core import health, wellknown
        from maxima import selectors
        from maxima.node import has_pool, node_health, pool_health

        # A gateway without a node serves the API but cannot speak Maxima: then there is no node part.
        health.register("node", node_health, critical=True, applies=lambda: bool(settings.MINIMA_RPC_URL))
        # The other nodes of a pool, each by its number: one down is degraded (the identity node sends all then).
        health.register("pool", pool_health, critical=False, applies=has_pool)
        health.register("address", selectors.address_check, critical=False, applies=selectors.has_permanent_address)
        wellknown.register("maxima", selectors.gateway_identity)
