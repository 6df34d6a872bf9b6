"""The streams section of ``tongdai bench``: a whole support floor online (issue #19).

``p.streams`` consoles hold the live stream open on the web server as ``tongdai up`` runs it
(uvicorn, ``webhooks/asgi.py``: two web processes, and the platforms' own ``inbound`` process)
while webhooks arrive at the inbound port at ``p.stream_rate`` per second and two ingest
workers store them. Every console is an admin's: each sees every message (the most work).
Reported:

* webhook_p99_with_500_streams_ms  the platforms' view: p99 of a webhook's answer time
* stream_fanout_p95_ms             message stored (its ``message.created`` ``ts``) → the event
                                   read by a console, over every console and message
* the web processes' resident memory before and with the streams open
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tongdai.benchmarks.common import Params, loadgen, percentile, tree_cpu_s, wait_port
from tongdai.benchmarks.env import BenchEnv, _children, free_port, log


def _rss_kib(pid: int) -> int:
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def bench_streams(env: BenchEnv, p: Params) -> dict:
    from rq import Worker

    from tongdai.core.workspace import tokens

    env.reset()
    hub, r = env.hub, env.redis
    token = tokens.create(hub, "bench-admin", "admin")  # sees every event: the most work
    port = free_port()
    web = env.python("web", "-m", "uvicorn", "tongdai.webhooks.asgi:create", "--factory",
                     "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                     "--log-level", "warning")
    hooks_port = free_port()
    inbound = env.python("inbound", "-m", "uvicorn", "tongdai.webhooks.asgi:create_inbound",
                         "--factory", "--host", "127.0.0.1", "--port", str(hooks_port),
                         "--log-level", "warning")
    workers = [env.python(f"worker-{i + 1}", "-m", "tongdai.core.cli", "worker", "--queues",
                          "ingest") for i in range(2)]
    sched = env.python("scheduler", "-m", "tongdai.core.cli", "scheduler")
    clients = None
    try:
        wait_port(web, port)
        wait_port(inbound, hooks_port)
        deadline = time.monotonic() + 30
        while len(Worker.all(connection=r)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        rss_idle = _rss_kib(web.proc.pid)
        ready, stop, out = (env.dir / "streams.ready", env.dir / "streams.stop",
                            env.dir / "streams.json")
        opts = {"port": port, "token": token, "n": p.streams, "sample": 50, "ready_path": str(ready),
                "stop_path": str(stop), "seconds": p.stream_seconds + 30}
        clients = env.python("stream-clients", "-m", "tongdai.benchmarks.streamclients",
                             json.dumps(opts), stdout=out)
        deadline = time.monotonic() + 90
        while not ready.exists() and time.monotonic() < deadline:
            if clients.proc.poll() is not None:
                raise RuntimeError(f"stream clients exited: {clients.tail()}")
            time.sleep(0.1)
        opened = int(ready.read_text() or 0)
        rss_open = _rss_kib(web.proc.pid)
        n = int(p.stream_rate * p.stream_seconds)
        cpu0 = {c.name: tree_cpu_s(c.proc.pid) for c in (web, inbound, clients, *workers)}
        t_run = time.monotonic()
        res = loadgen(env, "load-streams", hooks_port, n=n, duration=p.stream_seconds + 5,
                      rate=p.stream_rate, seed=77, base_update=700_000_000, users=500)
        deadline = time.monotonic() + 20
        while int(r.get(hub.keys.seq("message")) or 0) < res["ok"] and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the last events reach every console
        wall = time.monotonic() - t_run
        cpu = {k: round((tree_cpu_s(pid) - cpu0[k]) / wall, 2) for k, pid in
               ((c.name, c.proc.pid) for c in (web, inbound, clients, *workers))}
        stop.write_text("stop")
        clients.proc.wait(60)
        got = json.loads(out.read_text().strip().splitlines()[-1])
    finally:
        if clients is not None and clients.proc.poll() is None:
            clients.proc.kill()
        env.stop(web, inbound, *workers, sched)
    lat = got["latencies_ms"]
    stored = int(r.get(hub.keys.seq("message")) or 0)
    out_fig = {
        "webhook_p99_with_500_streams_ms": res["p99_response_ms"],
        "stream_fanout_p95_ms": percentile(lat, 0.95),
        "_streams": {
            "streams_open": opened, "streams_asked": p.streams, "offered_rate": p.stream_rate,
            "seconds": p.stream_seconds, "webhooks_ok": res["ok"], "statuses": res["statuses"],
            "webhook_p50_ms": res["p50_response_ms"], "stored": stored,
            "events_received": got["events"], "expected_events": stored * opened,
            "streams_failed": got["failed"], "stream_failures": got.get("failures"),
            "fanout_p50_ms": percentile(lat, 0.50), "fanout_max_ms": lat[-1] if lat else None,
            "web_rss_mib_idle": round(rss_idle / 1024, 1),
            "web_rss_mib_with_streams": round(rss_open / 1024, 1),
            "web_rss_kib_per_stream": round((rss_open - rss_idle) / max(1, opened), 1),
            "cpu_share_by_process": cpu,
            "server": "web: uvicorn --workers 2 (asgi:create); inbound: uvicorn 1 process "
                      "(asgi:create_inbound); 2 x `tongdai worker`",
        },
    }
    log(f"  {opened} streams: webhook p99 {res['p99_response_ms']:.1f} ms, fan-out p95 "
        f"{out_fig['stream_fanout_p95_ms']:.0f} ms, {got['events']} of "
        f"{stored * opened} events received, web RSS {rss_idle // 1024} → {rss_open // 1024} MiB")
    return out_fig
