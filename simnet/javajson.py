"""JSON text exactly as a Minima node writes it (its json-simple fork).

Differences from ``json.dumps``: no spaces, ``/`` is escaped as ``\\/``, non-ASCII text is written as is (UTF-8 on
the wire), control characters and the ranges U+007F-U+009F and U+2000-U+20FF become ``\\uXXXX`` with upper-case
hex digits, and doubles are printed the way Java's ``Double.toString`` prints them. Key order is insertion order,
as in the node's ``JSONObject``.
"""

import json
import math
from typing import Any

_SIMPLE_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "/": "\\/",
}


def _needs_unicode_escape(ch: str) -> bool:
    code = ord(ch)
    return code <= 0x1F or 0x7F <= code <= 0x9F or 0x2000 <= code <= 0x20FF


def escape(text: str) -> str:
    """Escape a string body the way ``JSONValue.escape`` does."""
    out: list[str] = []
    for ch in text:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif _needs_unicode_escape(ch):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def java_double(value: float) -> str:
    """Format a double like ``Double.toString`` for the values a node prints (plain or ``1.0E-5`` form)."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        return text if "." in text else text + ".0"
    mantissa, exponent = f"{value:.17e}".split("e")
    digits = repr(float(mantissa)) if "." in repr(float(mantissa)) else repr(float(mantissa)) + ".0"
    return f"{digits}E{int(exponent)}"


def dumps(value: Any) -> str:
    """Serialise dicts, lists, strings, ints, floats, bools and None as the node would."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return '"' + escape(value) + '"'
    if isinstance(value, dict):
        return "{" + ",".join('"' + escape(str(k)) + '":' + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


def loads(text: str) -> Any:
    """Parse JSON keeping key order (the node's parser keeps insertion order too)."""
    return json.loads(text)
