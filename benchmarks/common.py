"""What every ``tongdai bench`` section shares: the run sizes (``Params``), the servers'
gunicorn settings, and helpers to start, watch and load the processes under test.
"""

from __future__ import annotations

import json
import math
import socket
import time
from dataclasses import dataclass

from tongdai.benchmarks.env import CHANNEL, SECRET, BenchEnv, Child
from tongdai.core import clock

# The web server for the throughput comparison, identical for both apps: the worker class
# `tongdai up` and the Procfile run (gthread: a request waiting on Redis's fsync does not idle
# the process), one process (one core for the server, the other for the client and Redis).
GUNICORN = ["-w", "1", "-k", "gthread", "--threads", "8", "--backlog", "2048",
            "--log-level", "warning"]
# A second, informative comparison (full runs only): plain sync workers.
GUNICORN_THREADS = ["-w", "1", "-k", "sync", "--backlog", "2048", "--log-level", "warning"]
# The full system for the latency run, as `tongdai up` starts it: the platforms' own server
# (uvicorn, webhooks/asgi.py:create_inbound; keep-alive longer than the run: the pacing client
# reuses idle connections, as a platform's webhook sender does).
INBOUND_UP = ["-m", "uvicorn", "tongdai.webhooks.asgi:create_inbound", "--factory",
              "--host", "127.0.0.1", "--timeout-keep-alive", "75", "--log-level", "warning"]


@dataclass(frozen=True)
class Params:
    web_rounds: int  # alternating flask/webhook runs; the best of each counts
    web_seconds: float
    web_concurrency: int
    ingest_n: int  # raw events drained by one worker
    rq_n: int  # no-op jobs run by one worker
    lat_rate: float
    lat_warmup: float
    lat_seconds: float
    lat_workers: int
    mem_n: int  # messages, 100 per conversation
    hist_big: int
    hist_small: int
    hist_reps: int
    parse_reps: int
    web_threads: bool = False  # also compare under GUNICORN_THREADS (details only)
    lat_low_rate: float = 0.0  # also measure latency at this rate (details only)
    streams: int = 500  # open consoles (SSE) while webhooks arrive at stream_rate
    stream_rate: float = 200
    stream_seconds: float = 10.0
    # replies under backlog: agents' replies offered per second, for this long; profile
    # fetches queued beforehand; every n-th reply to a channel answering after this delay
    rep_rate: float = 10.0
    rep_seconds: float = 30.0
    rep_profiles: int = 10_000
    rep_slow_every: int = 10
    rep_slow_delay: float = 15.0


FULL = Params(web_rounds=2, web_seconds=5.0, web_concurrency=4, ingest_n=30_000, rq_n=600,
              lat_rate=1000, lat_warmup=1.0, lat_seconds=8.0, lat_workers=2, mem_n=20_000,
              hist_big=100_000, hist_small=100, hist_reps=2_000, parse_reps=1_000,
              web_threads=True, lat_low_rate=300)
QUICK = Params(web_rounds=1, web_seconds=2.0, web_concurrency=4, ingest_n=5_000, rq_n=150,
               lat_rate=1000, lat_warmup=0.5, lat_seconds=2.5, lat_workers=2, mem_n=4_000,
               hist_big=100_000, hist_small=100, hist_reps=300, parse_reps=100,
               streams=40, stream_rate=50, stream_seconds=2.0,
               rep_seconds=4.0, rep_profiles=2_000)


# -- helpers -----------------------------------------------------------------------------------
def wait_port(child: Child, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}): {child.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not listen on {port} within {timeout:.0f}s")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    import os

    from tongdai.benchmarks.env import stat_fields

    rest = stat_fields(pid)
    if rest is None:
        raise RuntimeError(f"process {pid} is gone")
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its live descendants and the children they have reaped."""
    import os

    from tongdai.benchmarks.env import _children, stat_fields

    total = 0.0
    for q in [pid, *_children(pid)]:
        if (rest := stat_fields(q)) is not None:
            total += sum(int(x) for x in rest[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def gunicorn_worker_pid(child: Child, timeout: float = 10.0) -> int:
    from tongdai.benchmarks.env import _children

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(child.proc.pid)
        if kids:
            return kids[0]
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} has no worker process")


def loadgen(env: BenchEnv, name: str, port: int, n: int, duration: float, *,
            concurrency: int = 4, rate: float = 0.0, seed: int = 1, base_update: int = 0,
            users: int = 1000) -> dict:
    opts = {"port": port, "path": f"/webhooks/{CHANNEL}", "secret": SECRET, "n": n,
            "duration": duration, "concurrency": concurrency, "rate": rate, "seed": seed,
            "users": users, "base_update": base_update}
    return env.run_json(name, ["-m", "tongdai.benchmarks.loadgen", json.dumps(opts)],
                        timeout=duration + 60)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def prefill_raw_log(env: BenchEnv, bodies: list[bytes], wake: bool) -> None:
    """Append raw events exactly as ``rawlog.append`` stores them, pipelined; then, when
    ``wake``, enqueue one ingest loop for the worker to run."""
    from tongdai.core.models import RawEvent
    from tongdai.core.pipeline import rawlog

    hub = env.hub
    for i in range(0, len(bodies), 1000):
        pipe = hub.redis.pipeline(transaction=False)
        for body in bodies[i:i + 1000]:  # stored as the webhook stores them (encrypted)
            pipe.execute_command(*rawlog.xadd_args(
                hub, RawEvent(CHANNEL, body, {"content-type": "application/json"},
                              clock.now_ms())))
        pipe.execute()
    if wake:
        rawlog.enqueue_ingest_loops(hub, 1)


def wait_stamp(env: BenchEnv, key: str, child: Child, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = env.redis.get(key)
        if v is not None:
            return float(v)
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}): {child.tail()}")
        time.sleep(0.002)
    raise RuntimeError(f"{child.name} did not start within {timeout:.0f}s")
