from django.apps import AppConfig


class EntryPointsConfig(AppConfig):
    name = "entrypoints"
    verbose_name = "Entry points on chain"
