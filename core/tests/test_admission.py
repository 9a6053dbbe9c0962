"""The bounded queue in front of the application: what is beyond it is refused at once, what is inside it is
served, and the Maxima hook is never refused."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import RequestFactory

from core.admission import Admission, admitted

# A liveness guard only (a request that should not wait would otherwise hang the suite): no speed is asserted.
HANG_GUARD_SECONDS = 30


class HeldApp:
    """An application that stays inside until released, so a test can fill the admission limit with requests."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.served = 0
        self.threads: set[str] = set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.threads.add(threading.current_thread().name)
        self.entered.release()
        self.release.wait(HANG_GUARD_SECONDS)
        self.served += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]


class Answer:
    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code, self.headers, self.body = int(status.split()[0]), dict(headers), body


class Caller:
    """A request made on a thread of its own, as a gthread worker's thread makes it."""

    def __init__(self, admission: Admission, path: str = "/api/v1/names/alice") -> None:
        self.answer: Answer | None = None
        self.thread = threading.Thread(target=self._call, args=(admission, path), daemon=True)
        self.thread.start()

    def _call(self, admission: Admission, path: str) -> None:
        started: list[Any] = []
        body = b"".join(admission(RequestFactory().get(path).environ, lambda *args: started.extend(args)))
        self.answer = Answer(started[0], started[1], body)

    def finished(self) -> Answer:
        self.thread.join(HANG_GUARD_SECONDS)
        assert not self.thread.is_alive(), "the request waited when it should have been answered"
        assert self.answer is not None
        return self.answer


@pytest.fixture
def view() -> Iterator[HeldApp]:
    held = HeldApp()
    yield held
    held.release.set()


def _middleware(settings: Any, view: HeldApp, *, admit: int, queue: int) -> Any:
    settings.MNS_WEB_ADMIT, settings.MNS_WEB_QUEUE = admit, queue
    return admitted(view)


def test_a_request_beyond_the_limit_is_refused_503_with_retry_after_while_the_limit_is_full(
    settings: Any, view: HeldApp
) -> None:
    middleware = _middleware(settings, view, admit=1, queue=0)
    inside = Caller(middleware)
    view.entered.acquire()  # the one slot is taken
    refused = Caller(middleware).finished()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert json.loads(refused.body)["error"] == "overloaded"
    assert view.served == 0  # the refusal did no work
    view.release.set()
    assert inside.finished().status_code == 200
    assert view.served == 1


def test_a_request_in_the_queue_waits_for_its_turn_and_is_served(settings: Any, view: HeldApp) -> None:
    middleware = _middleware(settings, view, admit=1, queue=1)
    first = Caller(middleware)
    view.entered.acquire()
    waiting = Caller(middleware)
    while middleware.inside < 2:  # the second is in line (not a speed measure: it only waits for the thread)
        time.sleep(0.01)
    assert Caller(middleware).finished().status_code == 503  # a third finds the queue full
    view.release.set()
    assert first.finished().status_code == 200
    assert waiting.finished().status_code == 200
    assert view.served == 2
    assert middleware.inside == 0


@pytest.mark.parametrize("path", ["/maxima/hook/secret/", "/onchain/hook/secret/"])
def test_the_nodes_hooks_are_never_refused(settings: Any, view: HeldApp, path: str) -> None:
    # the node posts a Maxima message or a coin event once: refused, it would be lost
    middleware = _middleware(settings, view, admit=1, queue=0)
    first = Caller(middleware)
    view.entered.acquire()
    hook = Caller(middleware, path)  # the limit is full: the hook waits for its turn
    assert Caller(middleware).finished().status_code == 503  # as anything else is refused meanwhile
    view.release.set()
    assert first.finished().status_code == 200
    assert hook.finished().status_code == 200
    assert view.served == 2


def test_admitted_requests_run_on_the_processs_own_threads_only(settings: Any, view: HeldApp) -> None:
    view.release.set()
    middleware = _middleware(settings, view, admit=2, queue=8)
    callers = [Caller(middleware) for _ in range(10)]  # ten gunicorn threads
    assert [caller.finished().status_code for caller in callers] == [200] * 10
    assert len(view.threads) <= 2  # so at most two database connections, whatever gunicorn's thread count
    assert all(name.startswith("admitted") for name in view.threads)


def test_no_limit_when_admission_is_off(settings: Any, view: HeldApp) -> None:
    middleware = _middleware(settings, view, admit=0, queue=0)
    assert middleware is view
    callers = [Caller(middleware) for _ in range(3)]
    for _ in callers:
        view.entered.acquire()
    view.release.set()
    assert [caller.finished().status_code for caller in callers] == [200, 200, 200]


def test_gunicorn_runs_threads_to_spare_beyond_what_it_admits_and_queues(settings: Any) -> None:
    from pathlib import Path

    config: dict[str, Any] = {}
    path = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
    exec(compile(path.read_text(), str(path), "exec"), config)  # noqa: S102 (our own settings file)
    assert config["worker_class"] == "gthread"
    assert config["threads"] > settings.MNS_WEB_ADMIT + settings.MNS_WEB_QUEUE
