from django.db import models


class Heartbeat(models.Model):
    """The last time a background process proved it is alive: ``beat`` (the scheduler) or ``worker``."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
