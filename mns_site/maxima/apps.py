from django.apps import AppConfig


class MaximaConfig(AppConfig):
    name = "mns_site.maxima"
    label = "maxima"
    verbose_name = "Maxima link"
