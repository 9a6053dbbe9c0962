"""The federation's beat task: it only fans out, through the kernel's queue, and a broker that refuses the fan-out
does not stop it from numbering the log."""

from typing import Any

import pytest
from kombu.exceptions import OperationalError

from federation import services, tasks
from federation.models import Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b  # noqa: F401 (fixtures)
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """What the sync task hands to the broker, instead of running it: (task name, arguments)."""
    sent: list[tuple[str, tuple[Any, ...]]] = []
    for task in (tasks.push_peer, tasks.pull_peer, tasks.claims_expire, tasks.reconcile_peer):
        monkeypatch.setattr(task, "apply_async", lambda args, _name=task.name, **options: sent.append((_name, args)))
    return sent


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    for task in (tasks.push_peer, tasks.pull_peer, tasks.claims_expire):
        monkeypatch.setattr(task, "apply_async", refuse)


def test_sync_enqueues_a_push_and_a_pull_per_active_peer_then_the_claims_expiry(
    peer_b: FakePeer,  # noqa: F811
    published: list[tuple[str, tuple[Any, ...]]],
) -> None:
    assert tasks.sync() == 1
    peer_id = Peer.objects.get(identity_key=peer_b.key).id
    assert published == [
        ("federation.push_peer", (peer_id,)),
        ("federation.pull_peer", (peer_id,)),
        ("federation.claims_expire", ()),
    ]


def test_sync_reconciles_with_a_peer_far_behind_its_log_instead_of_pulling_from_it(
    peer_b: FakePeer,  # noqa: F811
    published: list[tuple[str, tuple[Any, ...]]],
    settings: Any,
) -> None:
    settings.MNS_FEDERATION_SNAPSHOT_LAG = 100
    Peer.objects.filter(identity_key=peer_b.key).update(remote_head=5000)

    tasks.sync()

    peer_id = Peer.objects.get(identity_key=peer_b.key).id
    assert [name for name, _ in published] == [
        "federation.push_peer",
        "federation.reconcile_peer",
        "federation.claims_expire",
    ]
    assert published[1] == ("federation.reconcile_peer", (peer_id,))


def test_sync_still_numbers_the_log_when_the_broker_refuses_the_fan_out(
    peer_b: FakePeer,  # noqa: F811
    broker_down: None,
) -> None:
    services.op_append(kind="suspend", payload={"name": "alice"})
    assert tasks.sync() == 1
    assert list(Operation.objects.filter(origin=GATEWAY).values_list("seq", flat=True)) == [1]
