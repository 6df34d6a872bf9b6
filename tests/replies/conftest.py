"""Replies first (issue #12): a fast and a slow fake Telegram, real sender processes.

``tg-test`` talks to ``tg_fake``; ``tg-slow`` to ``slow_fake``, whose ``answer_delay`` a test
sets. A module overrides ``replies_yaml`` for the timeouts it needs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SECRET, TOKEN, write_config
from tests.helpers import tg_update
from tongdai.core import clock
from tongdai.core.hub import Hub
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import rawlog
from tongdai.worker import jobs

SLOW = "tg-slow"


@pytest.fixture
def slow_fake():
    from tests.fakes.telegram_api import FakeTelegramAPI

    with FakeTelegramAPI(TOKEN) as fake:
        yield fake


@pytest.fixture
def replies_yaml() -> str:
    return ""


@pytest.fixture
def config_file(tmp_path, tg_fake, slow_fake, replies_yaml):
    extra = f"""  - id: {SLOW}
    adapter: telegram
    settings:
      bot_token: "{TOKEN}"
      secret_token: "{SECRET}"
      api_base: "{slow_fake.base_url}"
{replies_yaml}"""
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=extra)


def open_conversation(hub: Hub, channel: str, chat_id: int) -> str:
    """A customer on ``channel`` writes once; returns their conversation's id."""
    body = tg_update(chat_id, chat_id, 1, f"xin chào từ {chat_id}")
    rawlog.append(hub, RawEvent(channel, body, {}, clock.now_ms()))
    assert jobs.ingest_pending(hub).stored == 1
    return hub.redis.get(hub.keys.seq("conversation")).decode()  # the newest one


class Processes:
    """``tongdai worker`` processes, stopped (whole process groups) at the end of the test."""

    def __init__(self, hub: Hub, redis_url: str, config_file, logs: Path) -> None:
        self.hub, self.logs = hub, logs
        self.env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
        self.procs: list[subprocess.Popen] = []

    def worker(self, queues: str) -> subprocess.Popen:
        """``tongdai worker --queues <queues>``, its output in the test's tmp dir."""
        with open(self.logs / f"worker-{len(self.procs)}.log", "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tongdai.core.cli", "worker", "--queues", queues],
                env=self.env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:]
                         for p in sorted(self.logs.glob("worker-*.log")))

    def wait_senders(self, lanes: dict[str, int], timeout: float = 20.0) -> None:
        """Until that many senders of each lane beat (so the channel gate counts them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise AssertionError(f"a worker exited:\n{self.output()}")
            if all(self.hub.redis.zcard(self.hub.keys.senders(lane)) >= n
                   for lane, n in lanes.items()):
                return
            time.sleep(0.05)
        raise AssertionError(f"senders did not start within {timeout:.0f}s")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def processes(hub, redis_url, config_file, tmp_path):
    procs = Processes(hub, redis_url, config_file, tmp_path)
    yield procs
    procs.stop()


def wait_for(check, timeout: float, step: float = 0.01):
    """``check()``'s first truthy value within ``timeout`` s, else AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout:g}s")
