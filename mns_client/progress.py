"""A progress line on stderr for a wait that lasts: ``waiting for the gateway to be healthy… 4 s (not yet: beat)``.

Nothing for the first two seconds (most waits end before); then, on a terminal, one line rewritten in place about
once a second, and elsewhere (a log, a pipe) a new line every few seconds. Never on stdout, so ``--json`` output
and anything parsing stdout are untouched.
"""

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(
        self,
        what: str,
        *,
        stream: TextIO | None = None,
        after: float = 2.0,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        inline: bool | None = None,
    ) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.after, self.every, self.clock = after, every, clock
        self.started = clock()
        # Rewritten in place on a terminal, unless the caller prints other lines meanwhile (inline=False).
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if inline is None else inline
        self._next = after
        self._shown = False

    def tick(self, detail: str = "") -> None:
        """Call as often as you like while waiting; it writes only when a line is due."""
        elapsed = self.clock() - self.started
        if elapsed < self._next:
            return
        text = f"{self.what}… {elapsed:.0f} s" + (f" ({detail})" if detail else "")
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self._next = elapsed + 1
        else:
            self.stream.write(text + "\n")
            self._next = elapsed + self.every
        self._shown = True
        self.stream.flush()

    def done(self) -> None:
        """The wait is over: clear the line on a terminal (what comes next says how it ended)."""
        if self._shown and self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        self._shown = False
