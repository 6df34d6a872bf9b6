"""No event answered 200 is ever trimmed unprocessed, and time shared between processes is
Redis's, not one machine's clock (issue #12: a scheduler 4 days ahead deleted 198 of 200
unprocessed events and forced an online agent offline)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tongdai.core import clock
from tongdai.core.keys import INGEST_QUEUE, RAW_GROUP
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import ingest, rawlog
from tongdai.core.workspace import presence, users


def _append(hub, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        body = orjson.dumps({"update_id": i, "message": {
            "message_id": i, "date": 1700000000 + i, "text": f"nạp thẻ lần {i}",
            "from": {"id": 5000 + i, "is_bot": False, "first_name": "Khách"},
            "chat": {"id": 5000 + i, "type": "private"}}})
        rawlog.append(hub, RawEvent("tg-test", body, {}, clock.now_ms()))


def _retained(hub) -> int:
    return sum(hub.redis.xlen(hub.keys.raw(s)) for s in range(hub.shards))


def _short_retention(hub, monkeypatch, seconds: float = 0.001) -> None:
    monkeypatch.setattr(hub.config.hub.ingest, "raw_retention", seconds)


def test_trim_keeps_events_no_worker_has_read(hub, monkeypatch):
    _append(hub, 50)
    _short_retention(hub, monkeypatch)
    time.sleep(0.01)
    assert rawlog.trim(hub) == 0
    assert _retained(hub) == 50


def test_trim_keeps_pending_events_and_drops_finished_ones(hub, monkeypatch):
    _append(hub, 40)
    batches = rawlog.read(hub, "c1", count=1000)
    finished = [b for b in batches if b.events]
    first, *rest = finished
    result = ingest.process(hub, first.events)  # the first shard is stored and acknowledged
    assert result.stored == len(first.events)
    rawlog.ack(hub, first.shard, [e.id for e in first.events])
    _short_retention(hub, monkeypatch)
    time.sleep(0.01)
    removed = rawlog.trim(hub)
    assert removed == len(first.events)  # the others were delivered but not acknowledged
    assert _retained(hub) == 40 - len(first.events)
    for b in rest:
        pending = hub.redis.xpending(hub.keys.raw(b.shard), RAW_GROUP)["pending"]
        assert pending == len(b.events)


def test_the_clock_follows_the_redis_server(hub, monkeypatch):
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 4 * 86_400 * 10**9)  # 4 days ahead
    monkeypatch.setattr(clock, "_next_sync", 0.0)
    assert abs(clock.now_ms() - clock.server_ms(hub.redis)) < 1_000
    assert clock.offset_ms() < -4 * 86_400_000 + 1_000


@pytest.mark.skipif(not shutil.which("faketime"), reason="needs Debian's faketime "
                    "(apt-get install faketime; .ci/run installs it)")
def test_a_scheduler_four_days_ahead_trims_nothing_and_keeps_agents_online(
        hub, redis_url, config_file, monkeypatch):
    _append(hub, 200)
    users.create(hub, users.User(name="an", role="agent", teams=[], display_name="An"),
                 "correct-horse-1")
    presence.set_status(hub, "an", "online")
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file),
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    proc = subprocess.Popen(["faketime", "-f", "+4d", sys.executable, "-m", "tongdai.core.cli",
                             "scheduler"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # the scheduler trims and runs the presence tick as soon as it starts
        # (its first round enqueues ingest loops, then trims; the ticks thread runs presence)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not hub.redis.llen(f"rq:queue:{INGEST_QUEUE}") \
                and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(3)
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # faketime runs the scheduler as its child
        out, _ = proc.communicate(timeout=20)
    assert _retained(hub) == 200
    assert presence.get(hub, "an").status == "online"
    assert b"clock is" in out  # it said its clock is off
