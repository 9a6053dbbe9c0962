"""``python -m core.supervise -- COMMAND …``: run a command and start it again whenever it dies.

What systemd's ``Restart=always`` does in production, for ``make run`` and the tests. A Celery worker can exit
on its own when the broker vanishes mid-delivery (a known kombu failure mode on Redis connection loss); nothing
accepted is lost when that happens, because every task is backed by a row a beat sweep finds again, but the
worker must come back. SIGTERM/SIGINT are passed on to the command and end the supervision.
"""

import signal
import subprocess
import sys
import time


def supervise(command: list[str], *, min_backoff: float = 0.5, max_backoff: float = 10.0) -> int:
    stopping = False
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    backoff = min_backoff
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)  # noqa: S603 - the operator's own command line
        code = child.wait()
        if stopping:
            return code
        # A command that ran for a while gets restarted at once; one that keeps failing, ever more slowly.
        backoff = min_backoff if time.monotonic() - started > 30 else min(backoff * 2, max_backoff)
        print(f"supervise: {command[0]} exited with {code}; restarting in {backoff:.1f} s", file=sys.stderr, flush=True)
        time.sleep(backoff)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        raise SystemExit("usage: python -m core.supervise -- COMMAND [ARGS…]")
    raise SystemExit(supervise(args))
