"""A worker killed with SIGKILL mid-batch loses nothing and duplicates nothing.

Real processes: `tongdai worker` (RQ, which forks a work horse per job) is killed with its
work horse while it drains; a fresh worker and the scheduler then finish the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tongdai.core import clock
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import rawlog

USERS, PER_USER = 300, 10
TOTAL = USERS * PER_USER


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tongdai.core.cli", *args], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants. RQ starts each work horse in a session of its own
    (``os.setsid``): killing the worker's process group would leave the horse running."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += _tree(int(child))
    except FileNotFoundError:
        pass
    return out


def _kill_all(proc: subprocess.Popen, sig: int) -> None:
    for pid in _tree(proc.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stored(hub) -> int:
    n = int(hub.redis.get(hub.keys.seq("conversation")) or 0)
    pipe = hub.redis.pipeline(transaction=False)
    for c in range(1, n + 1):
        pipe.zcard(hub.keys.timeline(str(c)))
    return sum(pipe.execute())


@pytest.mark.parametrize("kill_after", [1, 350], ids=["inside-first-batch", "mid-stream"])
def test_sigkill_mid_batch_loses_nothing_duplicates_nothing(hub, redis_url, config_file,
                                                            kill_after):
    for i in range(TOTAL):
        user = 10_000 + i % USERS
        body = orjson.dumps({"update_id": i + 1, "message": {
            "message_id": i + 1, "date": 1700000000 + i, "text": f"tin nhắn số {i}",
            "from": {"id": user, "is_bot": False, "first_name": "Khách"},
            "chat": {"id": user, "type": "private"}}})
        rawlog.append(hub, RawEvent("tg-test", body, {}, clock.now_ms()))

    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    first = _spawn(["worker"], env)
    deadline = time.monotonic() + 60
    while _stored(hub) < kill_after and time.monotonic() < deadline:
        time.sleep(0.002)
    _kill_all(first, signal.SIGKILL)  # the worker and its work horse, mid-batch
    first.wait()
    at_kill = _stored(hub)
    print(f"stored when killed: {at_kill} of {TOTAL}")
    assert 0 < at_kill < TOTAL, "the worker must die mid-way for this test to mean anything"

    second, sched = _spawn(["worker"], env), _spawn(["scheduler"], env)
    try:
        deadline = time.monotonic() + 90
        while _stored(hub) < TOTAL and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything still in flight would show up as an extra message now
    finally:
        for p in (second, sched):
            os.killpg(p.pid, signal.SIGTERM)
        for p in (second, sched):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                _kill_all(p, signal.SIGKILL)
                p.wait()

    assert _stored(hub) == TOTAL
    assert int(hub.redis.get(hub.keys.seq("customer"))) == USERS
    texts = []
    for c in range(1, int(hub.redis.get(hub.keys.seq("conversation"))) + 1):
        for blob in hub.redis.hvals(hub.keys.messages(str(c))):
            texts.append(orjson.loads(blob)["x"])
    assert sorted(texts) == sorted(f"tin nhắn số {i}" for i in range(TOTAL))
    assert hub.redis.hlen(hub.keys.dedupe("tg-test")) == TOTAL


def test_sigterm_ends_the_ingest_loop_after_its_batch_and_hands_over(hub, redis_url, tmp_path):
    """A deploy or a Ctrl-C of `tongdai up` sends the worker SIGTERM: its ingest loop ends
    after the batch in hand — not after its time box (here 10 minutes, so waiting it out
    would fail this test) —, frees its slot and leaves its successor queued."""
    from rq import Queue

    from tests.conftest import write_config
    from tongdai.core.keys import INGEST_QUEUE

    config = write_config(tmp_path / "tongdai.yaml")
    text = config.read_text().replace("  claim_idle: 1s\n", "  claim_idle: 1s\n"
                                      "  consumers: 1\n  loop_time_box: 10m\n", 1)
    config.write_text(text)
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config)}
    worker = _spawn(["worker", "--queues", "ingest"], env)
    try:
        for i in range(20):
            body = orjson.dumps({"update_id": i + 1, "message": {
                "message_id": i + 1, "date": 1700000000 + i, "text": f"tin nhắn số {i}",
                "from": {"id": 4242, "is_bot": False, "first_name": "Khách"},
                "chat": {"id": 4242, "type": "private"}}})
            rawlog.append(hub, RawEvent("tg-test", body, {}, clock.now_ms()))
        deadline = time.monotonic() + 60
        while _stored(hub) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stored(hub) == 20 and hub.redis.exists(hub.keys.ingest_slot(0))
        worker.send_signal(signal.SIGTERM)  # the worker alone, as `tongdai up` does
        assert worker.wait(120) == 0
    finally:
        if worker.poll() is None:
            _kill_all(worker, signal.SIGKILL)
            worker.wait()
    assert not hub.redis.exists(hub.keys.ingest_slot(0))  # let go of
    assert Queue(INGEST_QUEUE, connection=hub.redis).count == 1  # the successor waits
    assert _stored(hub) == 20
