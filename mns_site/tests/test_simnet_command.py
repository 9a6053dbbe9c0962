"""``manage.py simnet``'s options that are checked before any node starts: send timing, unreachable nodes."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--send-serial-share", "2", "serial_share"), ("--send-base-seconds", "-1", "negative")],
)
def test_a_send_timing_outside_its_range_is_refused_before_any_node_starts(option: str, value: str, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        call_command("simnet", option, value)


@pytest.mark.parametrize("nodes", ["0", "3"])
def test_unreachable_nodes_must_be_user_nodes_behind_node_0_and_are_refused_before_any_node_starts(nodes: str) -> None:
    with pytest.raises(CommandError, match="node 0 is their host"):
        call_command("simnet", "--nodes", "3", "--unreachable", nodes)
