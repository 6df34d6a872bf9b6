"""The latency section of ``tongdai bench``: webhook accepted → ``message.created`` on the
change feed, with the full system running as ``tongdai up`` starts it.
"""

from __future__ import annotations

import threading
import time

from tongdai.benchmarks.common import INBOUND_UP, Params, loadgen, percentile, tree_cpu_s, wait_port
from tongdai.benchmarks.env import BenchEnv, free_port, log


# -- 3. latency under load ------------------------------------------------------------------------
class Subscriber(threading.Thread):
    """Records when each ``message.created`` event arrives on the hub's change feed."""

    def __init__(self, env: BenchEnv) -> None:
        super().__init__(daemon=True, name="bench-subscriber")
        from tongdai.core.pipeline import feed

        self.feed = feed
        self.hub = env.hub
        self.after = feed.last_id(env.hub)
        self.arrivals: list[tuple[str, str, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        append, read = self.arrivals.append, self.feed.read_after
        while not self.stopping.is_set():
            events = read(self.hub, self.after, count=1000, block_ms=100)
            now = time.time() * 1000
            for ev in events:
                self.after = ev.id
                if ev.type == "message.created":
                    append((ev.data["conversation_id"], ev.data["message_id"], now))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)


def _latency_run(env: BenchEnv, p: Params, rate: float, seconds: float) -> dict:
    from rq import Worker

    from tongdai.core.models import Message

    env.reset()
    hub, r = env.hub, env.redis
    port = free_port()
    children = [env.python("inbound", *INBOUND_UP, "--port", str(port))]
    children += [env.python(f"worker-{i + 1}", "-m", "tongdai.core.cli", "worker", "--queues", "ingest")
                 for i in range(p.lat_workers)]
    children.append(env.python("scheduler", "-m", "tongdai.core.cli", "scheduler"))
    sub = None
    try:
        wait_port(children[0], port)
        deadline = time.monotonic() + 30
        while len(Worker.all(connection=r)) < p.lat_workers:
            for c in children:
                if c.proc.poll() is not None:
                    raise RuntimeError(f"{c.name} exited: {c.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError("RQ workers did not register within 30s")
            time.sleep(0.1)
        sub = Subscriber(env)
        sub.start()
        total_s = p.lat_warmup + seconds
        n = int(rate * total_s)
        pids = {c.name: c.proc.pid for c in children} | {"redis": env.server.proc.pid}
        cpu0 = {k: tree_cpu_s(pid) for k, pid in pids.items()}
        t_run = time.monotonic()
        res = loadgen(env, "load-latency", port, n=n, duration=total_s + 3, rate=rate,
                      seed=99, base_update=900_000_000, users=2000)
        if res["errors"]:
            raise RuntimeError(f"latency run: {res['errors']} failed requests {res['statuses']}")
        # wait for the pipeline to catch up: every accepted message stored, and (requests
        # still in flight when the client stopped) no more arriving
        deadline = time.monotonic() + 20
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            stored = int(r.get(hub.keys.seq("message")) or 0)
            if stored != last:
                last, last_change = stored, time.monotonic()
            if stored >= res["sent"] or (stored >= res["ok"]
                                         and time.monotonic() - last_change > 0.5):
                break
            time.sleep(0.02)
        time.sleep(0.2)
        wall = time.monotonic() - t_run
        cpu = {k: tree_cpu_s(pid) - cpu0[k] for k, pid in pids.items()}
        cpu["loadgen"] = res["client_cpu_s"]
        sub.stop()
    finally:
        if sub is not None and sub.is_alive():
            sub.stop()
        env.stop(*children)
    stored = int(r.get(hub.keys.seq("message")) or 0)
    cutoff_ms = (res["t0_wall"] + p.lat_warmup) * 1000
    lat: list[float] = []
    received_all: list[int] = []
    arrivals = sub.arrivals
    for i in range(0, len(arrivals), 2000):
        chunk = arrivals[i:i + 2000]
        pipe = r.pipeline(transaction=False)
        for conv, mid, _ in chunk:
            pipe.hget(hub.keys.messages(conv), mid)
        for (conv, mid, at), blob in zip(chunk, pipe.execute()):
            if blob is None:
                continue
            received = Message.from_blob(mid, conv, blob).received_ts_ms
            received_all.append(received)
            if received >= cutoff_ms:
                lat.append(at - received)
    lat.sort()
    if not lat:
        raise RuntimeError("latency run: no message.created events seen")
    # the rate the webhooks really accepted (the sender stalls when the server falls behind)
    span_s = max(1e-3, (max(received_all) - min(received_all)) / 1000)
    accept_rate = (len(received_all) - 1) / span_s
    out = {
        "latency_p50_ms": percentile(lat, 0.50),
        "latency_p99_ms": percentile(lat, 0.99),
        "latency_send_rate": res["send_rate"],
        "latency_accept_rate": accept_rate,
        "_latency": {
            "offered_rate": rate, "seconds": seconds, "warmup_s": p.lat_warmup,
            "measured": len(lat), "accepted": res["ok"], "stored": stored,
            "published": len(arrivals), "p90_ms": percentile(lat, 0.90),
            "max_ms": lat[-1], "max_send_lag_ms": res["max_send_lag_ms"],
            "sent": res["sent"],
            "mean_response_ms": res["mean_response_ms"],
            "cpu_share_by_process": {k: round(v / wall, 3) for k, v in cpu.items()},
            "cpu_us_per_message": {k: round(v / max(1, stored) * 1e6) for k, v in cpu.items()},
            "processes": f"{' '.join(INBOUND_UP[1:])} + {p.lat_workers} x "
                         "`tongdai worker` + `tongdai scheduler`",
        },
    }
    log(f"  latency at {rate:.0f}/s offered: p50 {out['latency_p50_ms']:.1f} ms, "
        f"p99 {out['latency_p99_ms']:.1f} ms, "
        f"max {lat[-1]:.0f} ms over {len(lat)} messages at {res['send_rate']:.0f} msg/s sent "
        f"and {accept_rate:.0f}/s accepted ({stored} stored)")
    return out


def bench_latency(env: BenchEnv, p: Params) -> dict:
    out = _latency_run(env, p, p.lat_rate, p.lat_seconds)
    if p.lat_low_rate:  # the same at a load this machine sustains: pipeline, not queueing
        low = _latency_run(env, p, p.lat_low_rate, min(5.0, p.lat_seconds))
        out["_latency"]["low_rate"] = {
            "offered_rate": p.lat_low_rate, "latency_p50_ms": low["latency_p50_ms"],
            "latency_p99_ms": low["latency_p99_ms"], "accept_rate": low["latency_accept_rate"],
            "cpu_us_per_message": low["_latency"]["cpu_us_per_message"]}
    return out
