"""Start-up and command failures as one sentence on stderr, not a traceback.

``manage.py`` (every management command, ``make run`` included) and ``mns_site.wsgi`` (gunicorn) run inside
``one_line_failures``: a setting the gateway does not understand (``EnvError``), any other ``ImproperlyConfigured``,
a ``CommandError`` or a refusal of the domain (``MNSError``, ``DomainError``) prints one line — what is wrong, which
variable or file, what to do — and exits non-zero. ``-v 3``, ``--traceback`` or ``DEBUG=true`` keep the traceback.
Anything else (a bug) keeps its traceback too.
"""

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from mns_client.protocol.errors import MNSError

_TRUE = {"1", "true", "yes", "on"}


def wants_traceback(argv: Sequence[str], environ: dict[str, str] | os._Environ) -> bool:
    """True under ``-v 3``/``--verbosity 3``, ``--traceback`` or a true ``DEBUG``."""
    if environ.get("DEBUG", "").strip().lower() in _TRUE or "--traceback" in argv:
        return True
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in ("-v3", "--verbosity=3"):
            return True
        if arg in ("-v", "--verbosity") and args[i + 1 : i + 2] == ["3"]:
            return True
    return False


def explain(exc: BaseException) -> str:
    """The one line for a failure: what is wrong and what to do about it."""
    from core.env import EnvError

    if isinstance(exc, EnvError):
        return (
            f"{exc}. Set {exc.name} to a valid value in the environment (or the EnvironmentFile/.env you load; "
            f"every variable is described in .env.example), or unset it for the default."
        )
    if isinstance(exc, ImproperlyConfigured):
        return f"the settings are not usable: {exc} (see .env.example)."
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(exc, MNSError):
        detail = getattr(exc, "detail", None) or str(exc)
        return f"{detail} ({exc.code})" if getattr(exc, "code", None) else str(detail)
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def one_line_failures(program: str, *, argv: Sequence[str] = (), exit_code: int = 1) -> Iterator[None]:
    """Run the block; turn a known failure into ``program: <one line>`` on stderr and ``SystemExit(exit_code)``."""
    try:
        yield
    except (ImproperlyConfigured, CommandError, MNSError) as exc:
        if wants_traceback(argv, os.environ):
            raise
        print(f"{program}: {explain(exc)}", file=sys.stderr, flush=True)
        code = exc.returncode if isinstance(exc, CommandError) else exit_code
        raise SystemExit(code or exit_code) from None
