from django.apps import AppConfig


class MnsSiteConfig(AppConfig):
    """The wiring on top. No models: it is an installed app for its commands (rungateway, simnet), templates and
    static files (the front page, the admin's style sheet and icon)."""

    name = "mns_site"
    verbose_name = "MNS gateway"
