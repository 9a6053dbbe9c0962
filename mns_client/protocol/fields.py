"""One strict field check for every wire format (``docs/protocol.md``, "One spelling").

Every parser of a message, a statement, a letter or a bulletin reads its JSON object through these functions, so
the rule is kept the same way everywhere:

- a JSON object is wanted; an unknown key, a missing required key and a key written twice refuse;
- ``null`` refuses for every key, an optional one included (leave it out), unless the format names that key as
  nullable;
- an integer is a JSON integer: ``true``/``false`` are refused (Python's ``True == 1``), so is ``1.0``;
- text is a JSON string, a flag a JSON ``true``/``false``; nothing is converted.

The functions do not choose the error: each format passes ``invalid``, a callable ``(field, problem)`` that makes
the exception its callers already catch (``MailboxMessageInvalid``, ``StatementInvalid``, …). Pure, no I/O.
"""

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

VERSION = 1
MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript reads integers up to here exactly

Invalid = Callable[[str, str], Exception]
"""Makes the exception a format raises: ``invalid(field, problem)``; ``problem`` reads after the field name."""


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise _DuplicateKey(key)
        body[key] = value
    return body


def loads(data: bytes, *, invalid: Invalid, what: str = "message") -> Any:
    """The JSON value of UTF-8 ``data``; a key written twice in one object refuses (parsers disagree on which wins)."""
    try:
        return json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _DuplicateKey as duplicate:
        raise invalid(duplicate.key[:40], "is written twice") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid(what, "is not UTF-8 JSON") from None


def check_keys(
    body: Any,
    *,
    required: Collection[str],
    optional: Collection[str] = (),
    nullable: Collection[str] = (),
    invalid: Invalid,
    what: str = "message",
    others: bool = False,
) -> Mapping[str, Any]:
    """``body`` as a dict: a JSON object with every ``required`` key, no key outside ``required`` and ``optional``
    (unless ``others``: a wrapper such as a REST answer may carry more), and no ``null`` except in ``nullable``."""
    if not isinstance(body, Mapping):
        raise invalid(what, "must be a JSON object")
    if not others:
        unknown = sorted(str(key)[:40] for key in body if key not in required and key not in optional)
        if unknown:
            raise invalid(unknown[0], "is an unknown field")
    for key in required if isinstance(required, list | tuple) else sorted(required):  # a sequence keeps its order
        if key not in body:
            raise invalid(key, "is missing")
    for key in sorted(set(required) | set(optional)):
        if key in body and body[key] is None and key not in nullable:
            raise invalid(key, "must be omitted rather than null")
    return body


def check_header(
    body: Any,
    message_type: str | None,
    *,
    required: Collection[str],
    optional: Collection[str] = (),
    nullable: Collection[str] = (),
    invalid: Invalid,
    version: int = VERSION,
) -> dict[str, Any]:
    """A ``{"v":version,"type":message_type,…}`` message (``message_type`` None: a format without ``type``), then
    ``check_keys`` over its other fields. The header is read first, so a message of another type says so."""
    header = {"v"} if message_type is None else {"v", "type"}
    if not isinstance(body, dict):
        raise invalid("message", "must be a JSON object")
    if not is_integer(body.get("v")) or body["v"] != version:
        raise invalid("v", f"must be {version}")
    if message_type is not None and body.get("type") != message_type:
        raise invalid("type", f'must be "{message_type}"')
    check_keys(body, required=header | set(required), optional=optional, nullable=nullable, invalid=invalid)
    return body


def is_integer(value: Any) -> bool:
    """A JSON integer: an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(value: Any, field: str, *, invalid: Invalid, low: int = 0, high: int = MAX_SAFE_INTEGER) -> int:
    """An integer in ``low … high``; ``true``, ``false``, ``1.0`` and ``"1"`` are refused."""
    if not is_integer(value):
        raise invalid(field, "must be an integer")
    if not low <= value <= high:
        raise invalid(field, f"must be between {low} and {high}")
    return value


def text(
    value: Any,
    field: str,
    *,
    invalid: Invalid,
    min_chars: int = 1,
    max_chars: int | None = None,
    pattern: re.Pattern[str] | None = None,
) -> str:
    """A string of ``min_chars`` to ``max_chars`` characters, matching ``pattern`` in full when one is given."""
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if len(value) < min_chars or (max_chars is not None and len(value) > max_chars):
        limit = f"{min_chars} to {max_chars}" if max_chars is not None else f"at least {min_chars}"
        raise invalid(field, f"must be {limit} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid(field, "is not in its format")
    return value


def boolean(value: Any, field: str, *, invalid: Invalid) -> bool:
    """``true`` or ``false``, not ``1``, ``0`` or ``"true"``."""
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def one_of(value: Any, field: str, choices: Collection[str], *, invalid: Invalid) -> str:
    if not isinstance(value, str) or value not in choices:
        raise invalid(field, f"must be one of {', '.join(choices)}")
    return value


def json_object(value: Any, field: str, *, invalid: Invalid) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    return value


def json_list(value: Any, field: str, *, invalid: Invalid, max_items: int | None = None) -> list[Any]:
    if not isinstance(value, list) or (max_items is not None and len(value) > max_items):
        limit = "" if max_items is None else f" of at most {max_items} items"
        raise invalid(field, f"must be a list{limit}")
    return value
