"""Who may change a name over REST: its owner, proved by a handshake session for the name and the change.

Sessions belong to the handshake app, which builds on this one: it registers its check here in its
``AppConfig.ready``. Without one registered, every change is refused (fail closed).
"""

from collections.abc import Callable

from rest_framework.request import Request

from core.errors import DomainError

SessionCheck = Callable[[Request, str, set[str]], None]
_checks: list[SessionCheck] = []


def register_session_check(check: SessionCheck) -> None:
    _checks[:] = [check]


def require_session(request: Request, *, name: str, purposes: set[str]) -> None:
    """Raise unless the request carries a live session for ``name`` opened for one of ``purposes``."""
    if not _checks:
        raise DomainError("session_required", "This gateway cannot check handshake sessions.", status=401)
    _checks[0](request, name, purposes)
