"""The embedded default's broker (``core.broker``): a worker polling the queue folder while another process writes
messages into it reads each one whole, never an empty or half-written file."""

import multiprocessing
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
    from mns_site.celery import app

    with Connection("filesystem://localhost/") as conn:
        assert type(conn.transport).__module__ == "core.broker"
    saved = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # only the URL: no transport setting overrides it
    try:
        with app.connection_for_write() as conn:
            assert type(conn.transport).__module__ == "kombu.transport.redis"
    finally:
        app.conf.broker_url = saved


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
