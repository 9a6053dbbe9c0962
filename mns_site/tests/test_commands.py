"""The wiring's own management commands are installed: ``make run`` starts the gateway with ``rungateway``."""

from django.core.management import get_commands


def test_rungateway_and_simnet_are_commands_of_the_wiring() -> None:
    commands = get_commands()
    assert (commands.get("rungateway"), commands.get("simnet")) == ("mns_site", "mns_site")
