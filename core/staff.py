"""What every staff action of the gateway shares: a reason, given in words, that its app keeps in its audit log.

Each app writes its own audit rows through its own model; the rule on the reason is the kernel's, one copy."""

from core.errors import DomainError


def required_reason(reason: str | None, *, acting_on: str) -> str:
    """The staff's reason without its surrounding space; refused (``reason_required``) when nothing is left.
    ``acting_on`` names what staff act on ("names", "mailboxes"), for the message."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("reason_required", f"Say why: staff actions on {acting_on} need a reason.")
    return reason
