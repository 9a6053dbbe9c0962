"""How the registry is plugged into the gateway: the beat schedule, the Maxima route, and the gateway's own key."""

from datetime import timedelta

import pytest

from maxima.models import NodeState
from maxima.routing import _types
from mns_site.celery import app as celery_app
from registry import handlers, services, tasks
from registry.models import NameRecord
from registry.tests.support import GATEWAY, Owner, hold


def test_beat_expires_unanswered_holds_every_minute(settings: object) -> None:
    entry = celery_app.conf.beat_schedule["registry.name_holds_expire"]
    assert (entry["task"], entry["schedule"]) == ("registry.name_holds_expire", 60.0)
    assert entry["kwargs"] == {"seconds": settings.MNS_NAME_HOLD_SECONDS}


@pytest.mark.django_db
def test_the_expiry_task_frees_holds_older_than_it_is_told(alice: Owner) -> None:
    hold(alice, "alice")
    NameRecord.objects.update(status_changed_at=NameRecord.objects.get().status_changed_at - timedelta(seconds=700))
    tasks.name_holds_expire.delay(seconds=600)
    assert not NameRecord.objects.exists()


def test_statement_messages_of_the_mns_application_go_to_the_registry() -> None:
    assert _types[("mns", "statement")] is handlers.statement_received


@pytest.mark.django_db
def test_the_gateway_key_is_the_one_its_node_reported() -> None:
    assert services.gateway_identity_key() is None
    NodeState.objects.create(pk=1, publickey=GATEWAY)
    assert services.gateway_identity_key() == GATEWAY
