"""A WSGI application that holds every request until it is told to let go, for the proxy test
(``test_haproxy.py``): each request adds a line to ``$HELD_DIR/inside``, then waits for ``$HELD_DIR/release``."""

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    folder = Path(os.environ["HELD_DIR"])
    with (folder / "inside").open("a") as inside:
        inside.write(environ.get("PATH_INFO", "") + "\n")
    while not (folder / "release").exists():
        time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served"]
