"""The shipped HAProxy configuration (docs/haproxy/mns.cfg), as it is, in front of a real gunicorn on loopback:
the requests beyond what gunicorn is given and what may wait are refused at once, by the proxy, with 503 and
``Retry-After``; the node's hooks wait their turn instead; everything admitted is served."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testsupport import REPO
from testsupport.processes import free_port, haproxy, listening, wait_for

INSIDE, QUEUE = 2, 3

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (Debian: haproxy)")


class Stack:
    def __init__(self, folder: Path, wait: str) -> None:
        self.folder, self.port, self.web, self.wait = folder, free_port(), free_port(), wait
        self.stats = folder / "stats.sock"
        self.children: list[subprocess.Popen] = []

    def start(self) -> None:
        held = {**os.environ, "HELD_DIR": str(self.folder), "PYTHONPATH": str(REPO)}
        web = [sys.executable, "-m", "gunicorn", "mns_site.tests.held_app", "--bind", f"127.0.0.1:{self.web}"]
        web += ["--worker-class", "gthread", "--threads", "16", "--workers", "1"]
        self._spawn(web, held, "gunicorn.log")
        wait_for(lambda: listening(self.web), timeout=30, what="gunicorn", log=self.folder / "gunicorn.log")
        (self.folder / "stats.cfg").write_text(f"global\n    stats socket {self.stats}\n")
        command, proxy = haproxy(
            bind=f"127.0.0.1:{self.port}",
            backend=f"127.0.0.1:{self.web}",
            inside=INSIDE,
            queue=QUEUE,
            wait=self.wait,
            extra=self.folder / "stats.cfg",
        )
        self._spawn(command, proxy, "haproxy.log")
        wait_for(lambda: listening(self.port), timeout=30, what="haproxy", log=self.folder / "haproxy.log")

    def _spawn(self, command: list[str], env: dict[str, str], log: str) -> None:
        out = (self.folder / log).open("w")
        self.children.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(timeout=30)

    def inside(self) -> int:
        path = self.folder / "inside"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def queued(self, backend: str = "gunicorn") -> int:
        """Requests waiting in the proxy's queue for ``backend`` (its ``qcur``, from the stats socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            text = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
        header, *rows = text.lstrip("# ").splitlines()
        columns = header.split(",")
        for row in rows:
            values = dict(zip(columns, row.split(","), strict=False))
            if values.get("pxname") == backend and values.get("svname") == "BACKEND":
                return int(values["qcur"] or 0)
        return 0

    def request(self, method: str = "GET", path: str = "/api/v1/names/alice") -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=b"{}" if method == "POST" else None)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    stack = Stack(tmp_path, getattr(request, "param", "60s"))  # long: the refusal beyond the queue, not its timeout
    try:
        stack.start()
        yield stack
    finally:
        (tmp_path / "release").touch()
        stack.stop()


def in_background(stack: Stack, answers: list[Any], method: str = "GET", path: str = "/api/v1/names/alice") -> None:
    threading.Thread(target=lambda: answers.append(stack.request(method, path)), daemon=True).start()


def gunicorn_full(stack: Stack) -> list[Any]:
    """Hold what the proxy gives gunicorn at once; the list their answers will go to."""
    answers: list[Any] = []
    for _ in range(INSIDE):
        in_background(stack, answers)
    wait_for(lambda: stack.inside() == INSIDE, timeout=30, what="gunicorn holding its share")
    return answers


def test_beyond_what_gunicorn_is_given_and_what_may_wait_the_proxy_refuses_at_once_with_retry_after(
    stack: Stack,
) -> None:
    answers = gunicorn_full(stack)
    for _ in range(QUEUE):
        in_background(stack, answers)
    wait_for(lambda: stack.queued() == QUEUE, timeout=30, what="the proxy's queue full")

    status, headers, body = stack.request()  # answered while everything before it is still held
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body)["error"] == "overloaded"
    assert stack.inside() == INSIDE  # it never reached gunicorn

    # The node's hook is never refused: it goes past the full queue to gunicorn (whose admission makes it wait).
    in_background(stack, answers, "POST", "/maxima/hook/secret/")
    wait_for(lambda: stack.inside() == INSIDE + 1, timeout=30, what="the hook reaching gunicorn")
    assert stack.queued() == QUEUE

    (stack.folder / "release").touch()
    wait_for(lambda: len(answers) == INSIDE + QUEUE + 1, timeout=60, what="every admitted request answered")
    assert sorted(status for status, _, _ in answers) == [200] * (INSIDE + QUEUE + 1)
    assert stack.inside() == INSIDE + QUEUE + 1


@pytest.mark.parametrize("stack", ["1s"], indirect=True)
def test_a_request_that_waited_the_proxys_wait_in_its_queue_is_refused_and_a_hook_held_longer_is_served(
    stack: Stack,
) -> None:
    answers = gunicorn_full(stack)
    in_background(stack, answers)
    in_background(stack, answers, "POST", "/maxima/hook/secret/")
    wait_for(lambda: stack.inside() == INSIDE + 1, timeout=30, what="the hook reaching gunicorn")
    wait_for(lambda: len(answers) == 1, timeout=30, what="the queued request refused after the proxy's wait")
    status, headers, body = answers[0]
    assert (status, headers["retry-after"], json.loads(body)["error"]) == (503, "1", "overloaded")

    time.sleep(1.5)  # the hook has been held longer than a request may wait in the queue
    (stack.folder / "release").touch()
    wait_for(lambda: len(answers) == INSIDE + 2, timeout=60, what="the hook and the held requests answered")
    assert sorted(status for status, _, _ in answers) == [200] * (INSIDE + 1) + [503]
    assert stack.inside() == INSIDE + 1  # the refused one never reached gunicorn


def test_posts_to_the_hook_paths_are_held_to_four_at_once_and_wait_their_turn(stack: Stack) -> None:
    """The node posts one event at a time; anyone may post to the hook paths (the secret decides what is stored,
    not what is sent), so their lane past the queue is bounded too: the fifth and sixth wait, and are served."""
    answers: list[Any] = []
    for n in range(6):
        in_background(stack, answers, "POST", f"/maxima/hook/flood-{n}/")
    wait_for(lambda: stack.inside() == 4, timeout=30, what="four hooks inside")
    wait_for(lambda: stack.queued("node_hooks") == 2, timeout=30, what="two hooks waiting in their lane")
    in_background(stack, answers)  # the other clients' lane is untouched
    wait_for(lambda: stack.inside() == 5, timeout=30, what="a lookup inside beside the four hooks")
    assert stack.queued("node_hooks") == 2

    (stack.folder / "release").touch()
    wait_for(lambda: len(answers) == 7, timeout=60, what="every request answered")
    assert [status for status, _, _ in answers] == [200] * 7
    assert stack.inside() == 7
