"""The embedded default's broker (``core.broker``): a worker polling the queue folder while another process writes
messages into it reads each one whole, never an empty or half-written file."""

import multiprocessing
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

TRANSPORT = "core.broker:Transport"
BODY = "x" * 4096


def connection(folder: Path) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "store_processed": False,
        "control_folder": str(folder / "control"),  # kombu's default is ./control, the repository's root
        "polling_interval": 0,  # the reader looks at the folder all the time: it meets the files being written
    }
    return Connection("filesystem://localhost/", transport=TRANSPORT, transport_options=options)


def produce(folder: Path, count: int) -> None:
    with connection(folder) as conn, conn.SimpleQueue("q") as queue:
        for n in range(count):
            queue.put({"n": n, "body": BODY})


def test_a_worker_polling_while_another_process_writes_reads_each_message_whole(tmp_path: Path) -> None:
    count = 4000
    producer = multiprocessing.get_context("fork").Process(target=produce, args=(tmp_path, count))
    producer.start()
    read = []
    try:
        with connection(tmp_path) as conn, conn.SimpleQueue("q") as queue:
            while len(read) < count:
                message = queue.get(timeout=60)  # kombu's stock transport fails here: JSONDecodeError
                assert message.payload["body"] == BODY
                read.append(message.payload["n"])
                message.ack()
    finally:
        producer.join(60)
    assert sorted(read) == list(range(count))  # each once (kombu orders by the millisecond, not within one)
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".part")]
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".msg")]


def test_a_filesystem_url_is_this_transport_and_a_redis_url_is_redis_with_nothing_else_to_change() -> None:
    from kombu.transport import redis

    from core import broker
    from mns_site.celery import app

    with Connection("filesystem://localhost/") as conn:
        assert type(conn.transport) is broker.Transport
    saved = app.conf.broker_url
    try:
        for scheme in ("redis", "rediss"):
            app.conf.broker_url = f"{scheme}://127.0.0.1:1/0"  # only the URL: no transport setting overrides it
            with app.connection_for_write() as conn:
                assert type(conn.transport) is broker.RedisTransport
                assert isinstance(conn.transport, redis.Transport)  # kombu's, with its client kept
                assert conn.transport_cls == scheme
        # rediss:// is TLS by kombu's channel's own connection class, which this one keeps
        assert broker.RedisChannel.connection_class_ssl is redis.Channel.connection_class_ssl
        assert broker.RedisChannel.connection_class_ssl is not None
    finally:
        app.conf.broker_url = saved


@pytest.fixture
def clients_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ``redis.Redis`` made from here on (the real one, counted)."""
    import redis

    made: list[object] = []
    init = redis.Redis.__init__

    def counted(self: object, *args: object, **kwargs: object) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    return made


@pytest.fixture
def queue_name(redis_url: str) -> Iterator[str]:
    """A queue of the test's own; kombu's record of its binding is removed after the test."""
    import redis

    name = f"test-broker-{uuid.uuid4().hex}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}", name)
    client.close()


def test_a_redis_channel_keeps_one_client_however_many_messages_it_publishes_and_acknowledges(
    redis_url: str, queue_name: str, clients_made: list[object]
) -> None:
    # kombu's own channel made a client for each command outside its consumer's connection: 120 for these 30 messages.
    from core import broker

    broker.install()
    with Connection(redis_url) as conn, conn.SimpleQueue(queue_name) as queue:
        assert type(conn.transport) is broker.RedisTransport
        for n in range(5):
            queue.put({"n": n})
            queue.get(timeout=5).ack()
        before = len(clients_made)
        read = []
        for n in range(5, 35):
            queue.put({"n": n})
        for _ in range(30):
            message = queue.get(timeout=5)
            read.append(message.payload["n"])
            message.ack()
        assert len(clients_made) == before  # none more for 30 messages
        assert read == list(range(5, 35))
        with pytest.raises(queue.Empty):
            queue.get(block=False)


def test_a_redis_channel_whose_pool_was_replaced_sends_through_the_new_pool(redis_url: str, queue_name: str) -> None:
    from core import broker

    broker.install()
    with Connection(redis_url) as conn, conn.SimpleQueue(queue_name) as queue:
        queue.put({"n": 1})
        channel = conn.default_channel
        kept = channel._create_client()
        assert channel._create_client() is kept
        channel._disconnect_pools()  # kombu does this in a forked child and on close; the next command makes a pool
        queue.put({"n": 2})
        assert channel._kept is not kept  # the publish made its client on the new pool
        assert channel._kept.connection_pool is channel.pool
        assert [queue.get(timeout=5).payload["n"] for _ in range(2)] == [1, 2]


def test_install_replaces_a_filesystem_transport_kombu_resolved_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from kombu import transport

    from core import broker

    monkeypatch.setitem(transport.TRANSPORT_ALIASES, "filesystem", "kombu.transport.filesystem:Transport")
    monkeypatch.setattr(transport, "_transport_cache", {})
    assert transport.get_transport_cls("filesystem").__module__ == "kombu.transport.filesystem"  # resolved, kept
    broker.install()
    assert transport.get_transport_cls("filesystem") is broker.Transport


def test_a_part_file_whose_writer_died_is_removed_when_a_channel_opens_and_a_fresh_one_is_kept(tmp_path: Path) -> None:
    import os
    import time

    from core.broker import ABANDONED_AFTER_SECONDS

    abandoned, fresh = tmp_path / ".1_a.q.msg.part", tmp_path / ".2_b.q.msg.part"
    message = tmp_path / "3_c.q.msg"  # a whole message, however old, is a queue's: never touched
    for path in (abandoned, fresh, message):
        path.write_text("{")
    old = time.time() - ABANDONED_AFTER_SECONDS - 60
    os.utime(abandoned, (old, old))
    os.utime(message, (old, old))
    with connection(tmp_path) as conn:
        conn.default_channel  # noqa: B018 (opening the channel is the act under test)
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == [fresh.name, message.name]
