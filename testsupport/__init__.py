"""Helpers shared by the test suites: the real-node fixtures and small builders.

The Minima fixtures in ``docs/vectors/maxima/`` are copies of ``shared/maxima/fixtures/``: outputs captured from
real Minima 1.0.45 nodes. They are the specification the RPC client, the codecs and simnet are tested against.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MAXIMA_FIXTURES = REPO / "docs" / "vectors" / "maxima"


@cache
def _load(name: str) -> str:
    matches = sorted(MAXIMA_FIXTURES.glob(f"{name}*.json")) if not name.endswith(".json") else [MAXIMA_FIXTURES / name]
    if len(matches) != 1:
        raise LookupError(f"expected one fixture for {name!r}, found {[m.name for m in matches]}")
    return matches[0].read_text()


def maxima_fixture(name: str) -> dict[str, Any]:
    """Load one fixture by its number prefix ("10-") or full file name; a fresh copy each call."""
    return json.loads(_load(name))
