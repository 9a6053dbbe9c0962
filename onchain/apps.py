from django.apps import AppConfig


class OnChainConfig(AppConfig):
    name = "onchain"
    verbose_name = "Names on chain (Minima's MNS)"
