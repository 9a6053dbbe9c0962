from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The kernel every app builds on: errors, API conventions, limits, the task queue, health, heartbeats."""

    name = "core"
    label = "core"
    verbose_name = "Background processes"  # the admin heads the heartbeats' section with it
