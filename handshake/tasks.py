from celery import shared_task

from handshake import services


@shared_task(name="handshake.clean", ignore_result=True)
def clean() -> tuple[int, int]:
    """Beat, every few minutes: delete challenges and sessions expired longer than MNS_HANDSHAKE_KEEP_SECONDS.

    Two conditional DELETEs, safe to run twice or in parallel. By hand: ``python manage.py handshake_clean``.
    """
    return services.handshakes_clean()
