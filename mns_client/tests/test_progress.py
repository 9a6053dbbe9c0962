"""The progress line for a wait that lasts, on stderr: nothing for two seconds, then its age."""

import io

from mns_client.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_wait_shorter_than_two_seconds_prints_nothing() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("waiting for the handshake answer", stream=stream, clock=clock)
    clock.now += 1.9
    progress.tick()
    progress.done()
    assert stream.getvalue() == ""


def test_a_longer_wait_in_a_log_prints_a_line_with_its_age_every_few_seconds() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("waiting for the handshake answer", stream=stream, clock=clock)
    for _ in range(20):
        clock.now += 0.5
        progress.tick("not yet: beat")
    assert stream.getvalue().splitlines() == [
        "waiting for the handshake answer… 2 s (not yet: beat)",
        "waiting for the handshake answer… 7 s (not yet: beat)",
    ]


def test_on_a_terminal_the_line_is_rewritten_in_place_and_cleared_when_done() -> None:
    clock, stream = Clock(), Terminal()
    progress = Progress("waiting for the handshake answer", stream=stream, clock=clock)
    clock.now += 2
    progress.tick()
    clock.now += 2
    progress.tick()
    progress.done()
    assert stream.getvalue() == (
        "\r\x1b[2Kwaiting for the handshake answer… 2 s\r\x1b[2Kwaiting for the handshake answer… 4 s\r\x1b[2K"
    )
