"""What the fault suite (``make faults``) relies on, checked fast in every run: redelivery settings, the beat lock,
the hook's clear refusals."""

import json

import pytest
from django.conf import settings
from django.core.cache import cache

from maxima.models import InboundEvent
from mns_site.celery import _periodic_lock
from testsupport import maxima_fixture


def test_a_task_is_acknowledged_only_after_it_ran_and_requeued_when_its_worker_dies() -> None:
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


def test_the_visibility_timeout_default_is_above_the_longest_task() -> None:
    from core.env import env_int

    default = env_int("__MNS_UNSET_FOR_THIS_TEST__", settings.REDIS_VISIBILITY_TIMEOUT, minimum=10)
    assert default > settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None and "CELERY_VISIBILITY_TIMEOUT" not in __import__("os").environ:
        assert visibility > settings.CELERY_TASK_TIME_LIMIT


def test_a_killed_workers_tasks_come_back_within_30_s_and_no_claim_is_taken_from_a_running_task() -> None:
    from maxima.selectors import inbound_lease, outbound_lease

    assert settings.REDIS_VISIBILITY_TIMEOUT <= 30  # the promise: redelivered within 30 s
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < settings.REDIS_VISIBILITY_TIMEOUT
    for lease in (inbound_lease(), outbound_lease()):
        assert settings.CELERY_TASK_TIME_LIMIT < lease.total_seconds() <= 30


class Every:
    def __init__(self, seconds: float) -> None:
        from datetime import timedelta

        self.run_every = timedelta(seconds=seconds)


def test_a_second_beat_does_not_send_a_periodic_task_the_first_sent_this_period() -> None:
    cache.clear()
    assert _periodic_lock("maxima.sweep_inbound", Every(10)) is True
    assert _periodic_lock("maxima.sweep_inbound", Every(10)) is False  # the other beat, the same period
    assert _periodic_lock("maxima.sweep_outbound", Every(10)) is True  # each task has its own lock
    cache.clear()
    assert _periodic_lock("maxima.sweep_inbound", Every(10)) is True  # the period over (the lock expired)


@pytest.mark.django_db
def test_a_throttled_hook_post_says_when_to_come_back(client: object, settings: object) -> None:
    settings.MAXIMA_MAX_AGE_SECONDS = 10**9  # the fixture was captured earlier
    settings.MNS_HOOK_RATE_PER_SENDER_PER_MINUTE = 1
    cache.clear()
    url = f"/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/"
    answers = []
    for n in range(2):
        event = json.loads(maxima_fixture("11-")["raw_body"])
        event["data"]["msgid"] = "0x" + f"{n + 7:064X}"
        answers.append(client.post(url, json.dumps(event), content_type="application/json"))
    assert answers[0].status_code == 200
    assert (answers[1].status_code, json.loads(answers[1].content)["error"]) == (429, "throttled")
    assert int(answers[1]["Retry-After"]) > 0
    assert InboundEvent.objects.count() == 1
