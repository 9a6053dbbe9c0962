"""``manage.py simnet``'s send-timing options: checked before any node starts."""

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
