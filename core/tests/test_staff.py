"""The reason every staff action must give (the kernel's one rule; each app keeps it in its own audit log)."""

import pytest

from core.errors import DomainError
from core.staff import required_reason


@pytest.mark.parametrize("reason", ["", "   ", "\n\t", None])
def test_a_missing_or_blank_reason_is_refused(reason: str | None) -> None:
    with pytest.raises(DomainError) as refusal:
        required_reason(reason, acting_on="names")
    assert (refusal.value.code, refusal.value.status) == ("reason_required", 400)
    assert refusal.value.detail == "Say why: staff actions on names need a reason."


def test_a_reason_is_kept_without_its_surrounding_space() -> None:
    assert required_reason("  spam, reported twice \n", acting_on="mailboxes") == "spam, reported twice"
