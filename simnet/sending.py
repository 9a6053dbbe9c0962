"""How long a ``maxima send`` takes a node, by size, and how many sends one node gets through at once.

Measured on real Minima 1.0.45 nodes (issue 17): one send alone took 0.03 s for 1 KB of data, 0.5 s for 60 KB,
2.3 s for 122 KB and 8.5-10 s for 245 KB (past that the package is refused, at once); one node sent ~30 messages a
second one at a time, 52/s with 4 concurrent senders (p99 342 ms) and 44/s with 16 (p99 1.9 s).

The model: a send takes ``base + full * (size / FULL_BYTES)²`` seconds (the square fits all four sizes within the
measured spread). A share of that (``serial_share``) is spent in the node's one send pipeline, one send at a time in
arrival order; the rest overlaps with other sends. Each send found ahead of it in the pipeline slows a send's turn
by ``contention`` (more senders got less through on the real node, not more). With the
defaults: 33/s alone, ~54/s with 4 senders, ~46/s with 16, and the times above by size.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

T = TypeVar("T")

FULL_BYTES = 250_000  # the most data one Maxima message carries (REFERENCE §2: 250 000 delivered, 300 000 refused)


@dataclass(frozen=True)
class SendTiming:
    """The knobs of the model (defaults as measured); ``SendTiming.instant()`` turns every delay off."""

    base_seconds: float = 0.03
    full_seconds: float = 9.5
    serial_share: float = 0.6
    contention: float = 0.015

    def __post_init__(self) -> None:
        if min(self.base_seconds, self.full_seconds, self.contention) < 0:
            raise ValueError("send times and contention cannot be negative")
        if not 0 <= self.serial_share <= 1:
            raise ValueError("serial_share is a share of a send's time, between 0 and 1")

    @classmethod
    def instant(cls) -> "SendTiming":
        return cls(base_seconds=0.0, full_seconds=0.0, serial_share=0.0, contention=0.0)

    def scaled(self, factor: float) -> "SendTiming":
        """The same shape with every time multiplied by ``factor`` (fast tests use a small one)."""
        return replace(self, base_seconds=self.base_seconds * factor, full_seconds=self.full_seconds * factor)

    def seconds(self, size: int) -> float:
        """The time one send of ``size`` data bytes takes a node that sends nothing else."""
        return self.base_seconds + self.full_seconds * (max(size, 0) / FULL_BYTES) ** 2

    def serial_seconds(self, size: int, waiting: int = 0) -> float:
        """The part of that send spent in the node's one pipeline, with ``waiting`` other senders queued."""
        return self.seconds(size) * self.serial_share * (1 + self.contention * max(waiting, 0))

    def rate(self, senders: int, size: int = 1000) -> float:
        """Sends a second in steady state with ``senders`` each sending one message after the other.

        Either each sender's own loop is the limit (``senders / seconds``) or the pipeline is, with everyone but
        the one being served waiting in it.
        """
        alone = senders / self.seconds(size) if self.seconds(size) > 0 else float("inf")
        serial = self.serial_seconds(size, waiting=senders - 1)
        return min(alone, 1 / serial) if serial > 0 else alone


@dataclass
class SendRecord:
    """One send that went through a node's pipeline: its turn, and how many senders were waiting before it."""

    ticket: int
    size: int
    waiting: int
    serial_start: float = 0.0
    serial_end: float = 0.0


RECORDS_KEPT = 4096


@dataclass
class SendPipeline:
    """A node's sends in arrival order through the serial stage; what it did is counted, the latest sends kept."""

    timing: SendTiming
    sleep: Callable[[float], None] = time.sleep
    records: deque[SendRecord] = field(default_factory=lambda: deque(maxlen=RECORDS_KEPT))
    sent: int = 0
    queued: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _next_ticket: int = 0
    _now_serving: int = 0

    def send(self, size: int, deliver: Callable[[], T]) -> tuple[T, float]:
        """Wait for this send's turn, spend its time, then ``deliver()``; returns its result and the seconds
        from the call until the send left the pipeline (what the node reports as the message's ``creation``)."""
        started = time.monotonic()
        total = self.timing.seconds(size)
        with self._cond:
            record = SendRecord(self._next_ticket, size, waiting=self._next_ticket - self._now_serving)
            self._next_ticket += 1
            self.records.append(record)
            self.sent += 1
            self.queued += record.waiting > 0
            while self._now_serving != record.ticket:
                self._cond.wait()
        try:
            serial = self.timing.serial_seconds(size, record.waiting)
            record.serial_start = time.monotonic()
            if serial > 0:
                self.sleep(serial)
            record.serial_end = time.monotonic()
        finally:
            with self._cond:
                self._now_serving += 1
                self._cond.notify_all()
        left_pipeline = time.monotonic() - started
        rest = total - serial if total > serial else 0.0
        if rest > 0:
            self.sleep(rest)
        return deliver(), left_pipeline
