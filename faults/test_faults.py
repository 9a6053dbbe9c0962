"""Faults against the real stack, each with MNS_FAULTS_MESSAGES deliveries sent during the fault and an exact
count at the end (``Traffic.count``): every acknowledged delivery stored exactly once, nothing refused stored."""

import os
import threading
import time
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from core.processes import celery_beat_command
from faults import postgres
from faults.stack import Stack, Traffic, kill
from mailboxes.tests.support import Opened
from mns_client.protocol.rpc import MinimaRPC
from testsupport.processes import process, wait_for

# Database access without pytest-django's per-test transaction or flush: see ``database`` in conftest.py.
pytestmark = [pytest.mark.faults, pytest.mark.slow]

MESSAGES = int(os.environ.get("MNS_FAULTS_MESSAGES", "200"))
OUTAGE = float(os.environ.get("MNS_FAULTS_OUTAGE_SECONDS", "8"))
SETTLE = 180.0  # seconds the stack may take to answer everything after a fault


def finish(traffic: Traffic, report: dict[str, Any], fault: str, **figures: Any) -> dict[str, Any]:
    settled = traffic.settle(timeout=SETTLE)
    counted = traffic.count()
    report["faults"][fault] = {**counted, "settled_after_s": round(settled, 1), **figures}
    return counted


def during(seconds: float, action: Any, *, every: float) -> threading.Thread:
    """Repeat ``action`` every ``every`` seconds for ``seconds``, in the background."""

    def loop() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(every)
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_without_a_fault_every_delivery_is_answered_and_counted(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    started = time.monotonic()
    traffic.run(MESSAGES, over=0)
    traffic.settle(timeout=SETTLE)
    rate = MESSAGES / (time.monotonic() - started)
    counted = finish(traffic, report, "none", sustained_rate_per_s=round(rate, 1))
    assert counted["acknowledged"] + counted["refused"] == MESSAGES
    report["sustained_rate_per_s"] = rate


def test_pool_children_killed_mid_task_lose_nothing_and_store_nothing_twice(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    kills = []

    def kill_a_child() -> None:
        found = stack.pool_children()
        if found:
            kill(found[-1])
            kills.append(found[-1])

    killer = during(OUTAGE, kill_a_child, every=1.0)
    traffic.run(MESSAGES, over=OUTAGE)
    killer.join()
    finish(traffic, report, "pool child kill -9", kills=len(kills))
    assert kills
    assert report["faults"]["pool child kill -9"]["settled_after_s"] <= 30


def test_the_whole_worker_killed_and_restarted_loses_nothing(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    before = stack.worker_pid()
    sender = threading.Thread(target=traffic.run, args=(MESSAGES,), kwargs={"over": OUTAGE})
    sender.start()
    time.sleep(OUTAGE / 3)
    for pid in [*stack.pool_children(), before]:
        kill(pid)  # the main process and its pool, at once, mid-traffic
    killed_at = time.monotonic()
    wait_for(lambda: stack.worker_pid() not in (None, before), timeout=60, what="the supervisor to restart it")
    back_at = time.monotonic()
    sender.join()
    traffic.settle(timeout=SETTLE)
    last_ack = max(item.acked_at for item in traffic.sent.values() if item.outcome == "stored")
    after_back = last_ack - back_at  # the production visibility timeout and claim leases (nothing overridden)
    figures = {"restarted_after_kill_s": round(back_at - killed_at, 1), "answered_after_back_s": round(after_back, 1)}
    finish(traffic, report, "worker kill -9 and restart", **figures)
    # A task the killed worker held comes back one visibility timeout after it was handed out (before the kill),
    # found by kombu's restore loop within its interval (2 s, mns_site/settings.py), then runs and sends its receipt
    # (a few seconds on a loaded machine). CI once measured 30.x s here against a bound of exactly 30, and 4.7 s on
    # the next run: the bound is the design's, not a round number.
    bound = settings.REDIS_VISIBILITY_TIMEOUT + 2 + 5
    assert after_back <= bound, f"the last delivery was acknowledged {after_back:.0f} s after the worker was back"


def test_redis_stopped_and_restarted_loses_nothing(stack: Stack, mailbox: Opened, report: dict[str, Any]) -> None:
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    stack.redis.stop()
    try:
        traffic.run(MESSAGES, over=OUTAGE)
    finally:
        stack.redis.start()
    finish(traffic, report, "redis stopped", outage_s=OUTAGE)


def test_postgresql_stopped_immediately_and_restarted_loses_nothing(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    cluster = postgres.from_env()
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    connection.close()
    cluster.stop_immediate()
    try:
        traffic.run(MESSAGES, over=OUTAGE)
    finally:
        cluster.start()
    wait_for(cluster.answers, timeout=30, what="PostgreSQL to come back")
    finish(traffic, report, "postgresql stopped (immediate)", outage_s=OUTAGE)


def test_the_minima_node_stopped_and_restarted_registers_the_hook_again_and_drains_the_outbox(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    node = stack.gateway_node
    sender = threading.Thread(target=traffic.run, args=(MESSAGES,), kwargs={"over": OUTAGE})
    sender.start()
    time.sleep(OUTAGE / 4)
    node.stop()
    node.hooks.clear()  # as a node with a fresh data folder: the gateway must register its hook again
    time.sleep(OUTAGE / 2)
    node.start()
    sender.join()
    hook = f"MAXIMA#{stack.hook_url}"
    wait_for(lambda: hook in MinimaRPC(node.rpc_url).webhooks_list(), timeout=30, what="the hook registered again")
    finish(traffic, report, "minima node stopped", outage_s=round(OUTAGE / 2, 1))


def test_a_webhook_flood_is_answered_fast_or_refused_clearly(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    rate = report.get("sustained_rate_per_s", 20.0)
    traffic = Traffic(stack, mailbox.mailbox.record.name, threads=16)
    count = max(MESSAGES, int(10 * rate * 2))
    started = time.monotonic()
    traffic.run(count, over=count / (10 * rate), via=("hook",))
    achieved = count / (time.monotonic() - started)
    counted = finish(traffic, report, "webhook flood", flood_rate_per_s=round(achieved, 1), sustained_rate=rate)
    answers = counted["hook_answers"]
    assert set(answers) <= {200, 429, 503}, answers
    assert counted["hook_max_ms"] < 5000


def test_a_slow_database_makes_the_hook_refuse_clearly_not_hang(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    # Two posts at a time, as many as the stack's gunicorn has workers: a node posts its events one at a time and
    # waits for each answer, so what is measured is how long the hook makes the node wait, not a queue in front of
    # gunicorn (the flood test is the one about too many posts).
    traffic = Traffic(stack, mailbox.mailbox.record.name, threads=2)
    port, name = os.environ["MNS_FAULTS_PG_PORT"], connection.settings_dict["NAME"]
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname={name}"
    with psycopg.connect(dsn) as locker:
        locker.execute("LOCK TABLE maxima_inboundevent IN EXCLUSIVE MODE")  # inserts and claims wait; reads go on
        release = threading.Timer(OUTAGE, locker.rollback)  # the lock is held for OUTAGE s, whatever the traffic
        release.start()
        try:
            traffic.run(MESSAGES, over=OUTAGE, via=("hook",))
        finally:
            release.join()
    counted = finish(traffic, report, "slow database (table lock)", lock_s=OUTAGE)
    answers = counted["hook_answers"]
    assert set(answers) <= {200, 503}, answers
    assert "no-retry-after" not in answers
    assert counted["hook_max_ms"] < 5000, "the hook waited on the database instead of refusing"


def test_beat_started_twice_still_runs_each_periodic_task_once(
    stack: Stack, mailbox: Opened, report: dict[str, Any]
) -> None:
    log = stack.tmp / "beat2.log"
    window = 12.0
    beat = celery_beat_command(schedule=stack.tmp / "b2")
    traffic = Traffic(stack, mailbox.mailbox.record.name)
    before = _heartbeats(stack)
    with process(beat, env=stack.env, log=log):
        time.sleep(3)  # both beats running
        start = _heartbeats(stack)
        traffic.run(MESSAGES, over=window)
        end = _heartbeats(stack)
    runs = end - start
    finish(traffic, report, "beat started twice", heartbeat_runs=runs, window_s=window, runs_before=before)
    assert runs <= window / 1 * 1.25, f"{runs} heartbeat runs in {window} s with two beats (every 1 s)"


def _heartbeats(stack: Stack) -> int:
    text = stack.logs["worker"].read_text(errors="replace")
    return text.count("core.heartbeat[") // 2  # "received" and "succeeded" lines
