from datetime import timedelta

from celery import shared_task

from registry import services


@shared_task(name="registry.name_holds_expire", ignore_result=True)
def name_holds_expire(*, seconds: int) -> int:
    """Scheduled every minute by beat: free the names whose owner never answered the handshake in time.

    Safe to run twice or in parallel (each record is re-checked under its row lock). By hand:
    ``python manage.py shell -c "from registry.tasks import name_holds_expire; name_holds_expire(seconds=600)"``.
    """
    return services.name_holds_expire(older_than=timedelta(seconds=seconds))
