from django.apps import AppConfig


class EntryPointsConfig(AppConfig):
    name = "entrypoints"
    verbose_name = "Entry points on chain"

    def ready(self) -> None:
        from core import wellknown
        from entrypoints import selectors

        wellknown.register("entry_points", selectors.chain_config)
