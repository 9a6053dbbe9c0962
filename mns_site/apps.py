from django.apps import AppConfig


class MnsSiteConfig(AppConfig):
    name = "mns_site"
    # The admin heads this app's section with it (its one model is the background processes' heartbeat).
    verbose_name = "Background processes"
