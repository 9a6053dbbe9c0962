"""The MNS gateway's Django project: settings, URLs, the Celery app and the cross-cutting pieces."""

from mns_site.celery import app as celery_app

__all__ = ["celery_app"]
