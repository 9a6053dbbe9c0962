"""Properties (hypothesis): normalisation is idempotent, and no two live records share a name or a skeleton."""

import contextlib

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mns_client.protocol.errors import MNSError
from mns_client.protocol.names import NameRefused, normalise
from registry import selectors, services
from registry.models import NameRecord
from registry.tests.support import GATEWAY, Owner

# Letters that fold into one another (l, i, 1, I, fullwidth l; o, 0, O; rn, m), so look-alikes collide often.
LOOKALIKE_TEXT = st.text(alphabet="alILi1\uff4coO0rnm-_", min_size=1, max_size=7)
ACTIONS = st.lists(
    st.tuples(st.integers(0, 2), LOOKALIKE_TEXT, st.sampled_from(["register", "hold", "release"])),
    min_size=2,
    max_size=12,
)


@given(raw=st.text(max_size=40) | LOOKALIKE_TEXT)
def test_normalisation_is_idempotent(raw: str) -> None:
    try:
        name = normalise(raw)
    except NameRefused:
        return
    assert normalise(name) == name


@pytest.mark.django_db
@given(raw=st.text(max_size=40) | LOOKALIKE_TEXT)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_availability_answers_a_fixed_point_of_normalisation(raw: str) -> None:
    name = selectors.name_availability(raw=raw).name
    assert name is None or selectors.name_availability(raw=name).name == name


def _act(owner: Owner, raw: str, action: str) -> None:
    name = normalise(raw)
    record = selectors.record_find(name=name)
    seq = (record.seq or 0) + 1 if record is not None else 1
    if action == "release":
        services.statement_apply(signed=owner.sign("release", name, seq), source="api")
        return
    services.name_hold(signed=owner.sign("register", name, seq), gateway_key=GATEWAY, source="api")
    if action == "register":
        services.name_activate(name=name)


@pytest.mark.django_db
@given(actions=ACTIONS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_two_live_records_share_a_name_or_a_skeleton(alice: Owner, bob: Owner, carol: Owner, actions: list) -> None:
    owners = (alice, bob, carol)
    with transaction.atomic():
        for owner_index, raw, action in actions:
            with contextlib.suppress(MNSError):  # refusals are part of the game
                _act(owners[owner_index], raw, action)
        names = list(NameRecord.objects.values_list("name", flat=True))
        skeletons = list(NameRecord.objects.exclude(status="released").values_list("skeleton", flat=True))
        assert len(names) == len(set(names))
        assert len(skeletons) == len(set(skeletons))
        assert all(normalise(name) == name for name in names)
        transaction.set_rollback(True)
