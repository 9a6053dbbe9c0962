"""kombu's transports as the gateway uses them: the filesystem one (the embedded default's broker), whose messages
appear in the queue folder whole, and the Redis one, which keeps its client.

**Filesystem.** kombu writes a message by opening its final name in the queue folder and then writing into it, and takes
a message by moving any file of that name pattern out of the folder and reading it, without the lock the writer holds: a
worker that looked at the wrong moment read an empty or half-written file, failed to decode it and stopped
("Unrecoverable error: JSONDecodeError", seen under the Maxima bench on the embedded default). Here a message is written
under a name the reader never takes and renamed to its final name once whole; a rename within one folder is atomic, so
the reader sees the whole message or nothing.

A ``.part`` file whose writer was killed between the write and the rename is never taken; a channel opened later
removes those over an hour old.

**Redis.** kombu's Redis channel builds a new ``redis.Redis`` for every command it sends outside its consumer's own
connection: two for every publish (the exchange's bindings, then the ``LPUSH``), one for every acknowledgement.
redis-py fills each new client's table of response callbacks (about 170 entries): a publish cost ~690 µs of CPU,
of which keeping the client saves 120-140 (the webhook publishes a drain task twice every 50 ms in each web
process; the worker acknowledges every task). A ``redis.Redis`` over a connection pool is thread-safe, so the
channel keeps one per pool, as ``core.cache`` does for Django's cache. The consumer's own clients (``client``,
``subclient``) are kombu's as they were.

``install()`` (called where the Celery app is made, ``mns_site/celery.py``) makes these the transports of every
``filesystem://``, ``redis://`` and ``rediss://`` URL, so the URL alone chooses the broker: a process or a test that
points Celery at Redis gets Redis, with no transport setting left behind to override its URL.
"""

import contextlib
import os
import time
import uuid
from typing import Any

from kombu import transport
from kombu.exceptions import ChannelError
from kombu.transport import filesystem, redis
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "filesystem"
REDIS_SCHEMES = ("redis", "rediss")  # kombu's one Redis transport takes both (the scheme alone says TLS)
ABANDONED_AFTER_SECONDS = 3600  # a writer renames its file within milliseconds: one this old was killed
PART = ".part"


def install() -> None:
    """Make these the transports of ``filesystem://``, ``redis://`` and ``rediss://`` URLs in this process (kombu
    looks its aliases up when it connects)."""
    for scheme, name in ((SCHEME, "Transport"), *((scheme, "RedisTransport") for scheme in REDIS_SCHEMES)):
        transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:{name}"
        transport._transport_cache.pop(scheme, None)  # resolved before? kombu keeps what it resolved by name


class Channel(filesystem.Channel):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        remove_abandoned(self.data_folder_out)

    def _put(self, queue: str, payload: dict, **kwargs: object) -> None:
        """Put ``payload`` on ``queue``: written as ``.<name>.part``, then renamed to kombu's own name for it."""
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}{PART}")  # its suffix is no queue's: never taken
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


class RedisChannel(redis.Channel):
    _kept: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu's client for a command outside the consumer's connection: one kept per pool, not one a command
        (a pool kombu makes anew, in a forked child or when the channel closes, gets a client of its own)."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        kept = self._kept
        if kept is None or kept.connection_pool is not self.pool:
            kept = self._kept = super()._create_client()
        return kept


class RedisTransport(redis.Transport):
    Channel = RedisChannel


def remove_abandoned(folder: str, now: float | None = None) -> int:
    """Remove the ``.part`` files of ``folder`` older than ``ABANDONED_AFTER_SECONDS`` (their writers died before
    the rename: they hold no message anyone acknowledged); how many."""
    now = time.time() if now is None else now
    removed = 0
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not (entry.name.startswith(".") and entry.name.endswith(PART)):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > ABANDONED_AFTER_SECONDS:
                    os.unlink(entry.path)
                    removed += 1
    return removed
