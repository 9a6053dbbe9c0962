"""Beat deletes challenges and sessions long expired, and keeps everything still useful or recent."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from handshake import tasks
from handshake.models import Answer, Challenge, Session
from handshake.tests.support import answer, receive, start
from maxima import routing
from mns_site.celery import app as celery_app
from registry.tests.support import Owner, register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]


@pytest.fixture
def aged(alice: Owner, client: object) -> dict[str, str]:
    """An old answered challenge with its session, an old pending one, and fresh ones."""
    register(alice, "alice")
    old, old_pending, fresh = start(), start(), start()
    receive(answer(alice, old.id, old.code))
    client.post(f"/api/v1/handshakes/{old.id}/session", {"verifier": old.verifier}, content_type="application/json")
    long_ago = timezone.now() - timedelta(days=2)
    Challenge.objects.filter(id__in=[old.id, old_pending.id]).update(expires_at=long_ago)
    Session.objects.update(expires_at=long_ago)
    return {"old": old.id, "old_pending": old_pending.id, "fresh": fresh.id}


def test_the_beat_task_deletes_what_expired_before_the_keep_period(aged: dict[str, str]) -> None:
    assert tasks.clean() == (2, 1)
    assert list(Challenge.objects.values_list("id", flat=True)) == [aged["fresh"]]
    assert not Session.objects.exists()
    assert not Answer.objects.exists()


def test_running_it_again_deletes_nothing_more(aged: dict[str, str]) -> None:
    tasks.clean()
    assert tasks.clean() == (0, 0)


def test_recently_expired_challenges_and_sessions_stay_visible(aged: dict[str, str], settings: object) -> None:
    settings.MNS_HANDSHAKE_KEEP_SECONDS = 3 * 86400
    assert tasks.clean() == (0, 0)
    assert Challenge.objects.count() == 3
    assert Session.objects.count() == 1


def test_a_challenge_stays_while_its_session_can_still_be_picked_up(alice: Owner, settings: object) -> None:
    settings.MNS_HANDSHAKE_KEEP_SECONDS = 0
    register(alice, "alice")
    started = start()
    receive(answer(alice, started.id, started.code))
    Challenge.objects.update(expires_at=timezone.now() - timedelta(seconds=10))
    assert tasks.clean() == (0, 0)


def test_the_management_command_runs_the_same_cleanup(aged: dict[str, str], capsys: pytest.CaptureFixture) -> None:
    call_command("handshake_clean")
    assert capsys.readouterr().out.strip() == "deleted 2 challenges and 1 sessions"


def test_beat_runs_the_cleanup_every_five_minutes() -> None:
    schedule = celery_app.conf.beat_schedule
    assert schedule["handshake.clean"]["task"] == "handshake.clean"
    assert schedule["handshake.clean"]["schedule"] == 300


def test_handshake_messages_of_the_mns_application_come_here() -> None:
    assert routing._types[("mns", "handshake")].__module__ == "handshake.handlers"
