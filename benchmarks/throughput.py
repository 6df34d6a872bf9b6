"""Throughput sections of ``tongdai bench``: webhook acks against a bare Flask app, and
messages ingested against RQ no-op jobs, each by one process on the same machine.
"""

from __future__ import annotations

import time

from tongdai.benchmarks.common import (
    GUNICORN,
    GUNICORN_THREADS,
    Params,
    gunicorn_worker_pid,
    loadgen,
    prefill_raw_log,
    proc_cpu_s,
    wait_port,
    wait_stamp,
)
from tongdai.benchmarks.corpus import Traffic
from tongdai.benchmarks.env import BenchEnv, Child, free_port, log

# -- 1. webhook vs bare Flask ------------------------------------------------------------------
# The figure compares what production runs for the platforms (the Procfile's `inbound`: uvicorn,
# `webhooks/asgi.py:create_inbound`, one process here) with a bare Flask hello-world under
# gunicorn gthread, one process each. The details also time the WSGI path (the Flask webhook
# route under the same gunicorn as the hello app), which plain-WSGI deployments serve.
_HELLO = ("flask", ["-m", "gunicorn", *GUNICORN, "-b", "127.0.0.1:{port}",
                    "tongdai.benchmarks.hello_app:app"])
_INBOUND = ("webhook", ["-m", "uvicorn", "tongdai.webhooks.asgi:create_inbound", "--factory",
                        "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"])
_WSGI = ("webhook", ["-m", "gunicorn", *GUNICORN, "-b", "127.0.0.1:{port}",
                     "tongdai.webhooks.wsgi:app"])


def bench_webhook(env: BenchEnv, p: Params) -> dict:
    out = _webhook_vs_flask(env, p, [_HELLO, _INBOUND], p.web_seconds, "")
    out["_webhook"]["server"] = ("webhook: uvicorn asgi:create_inbound, 1 process; Flask hello: "
                                 "gunicorn " + " ".join(GUNICORN))
    if p.web_threads:
        for tag, apps, label in (("wsgi-", [_HELLO, _WSGI], "gunicorn " + " ".join(GUNICORN)),
                                 ("sync-", [_sync(_HELLO), _sync(_WSGI)],
                                  "gunicorn " + " ".join(GUNICORN_THREADS))):
            t = _webhook_vs_flask(env, p, apps, min(4.0, p.web_seconds), tag)
            out["_webhook"][tag.rstrip("-")] = {
                "server": f"both under {label}",
                "webhook_vs_flask": t["webhook_vs_flask"],
                "webhook_acks_per_s": t["webhook_acks_per_s"],
                "flask_acks_per_s": t["flask_acks_per_s"],
                "server_cpu_us_per_req": t["_webhook"]["server_cpu_us_per_req"],
            }
    return out


def _sync(app: tuple[str, list[str]]) -> tuple[str, list[str]]:
    name, args = app
    i = args.index("-w")
    j = args.index("--log-level") + 2
    return name, [*args[:i], *GUNICORN_THREADS, *args[j:]]


def _server_pid(child: Child, args: list[str]) -> int:
    # gunicorn answers from a forked worker; uvicorn without --workers from its own process
    return gunicorn_worker_pid(child) if "gunicorn" in args else child.proc.pid


def _webhook_vs_flask(env: BenchEnv, p: Params, apps: list[tuple[str, list[str]]],
                      seconds: float, tag: str) -> dict:
    env.reset()
    servers: dict[str, tuple[Child, int, list[str]]] = {}
    try:
        for name, args in apps:
            port = free_port()
            argv = [a.replace("{port}", str(port)) for a in args]
            servers[name] = (env.python(f"server-{tag}{name}", *argv), port, argv)
        for child, port, _ in servers.values():
            wait_port(child, port)
        rates: dict[str, list[float]] = {"flask": [], "webhook": []}
        cpu: dict[str, list[float]] = {"flask": [], "webhook": []}
        client_cpu: list[float] = []
        run_no = 0
        for rnd in range(p.web_rounds + 1):  # round 0 warms both servers up
            for name, (child, port, argv) in servers.items():
                run_no += 1
                wpid = _server_pid(child, argv)
                secs = 0.5 if rnd == 0 else seconds
                c0 = proc_cpu_s(wpid)
                r = loadgen(env, f"load-{tag}{name}-{rnd}", port, n=int(secs * 6000), duration=secs,
                            concurrency=p.web_concurrency, seed=run_no,
                            base_update=run_no * 10_000_000)
                used = proc_cpu_s(wpid) - c0
                if rnd == 0:  # warm-up: a cold worker may answer nothing in 0.5 s; try again
                    deadline = time.monotonic() + 30
                    while not r["ok"] and not r["errors"] and time.monotonic() < deadline:
                        run_no += 1
                        r = loadgen(env, f"warm-{tag}{name}-{run_no}", port, n=100, duration=1.0,
                                    concurrency=1, seed=run_no, base_update=run_no * 10_000_000)
                if r["errors"] or not r["ok"]:
                    raise RuntimeError(f"{name}: {r['errors']} failed requests {r['statuses']}: "
                                       f"{child.tail()}")
                if rnd == 0:
                    continue
                rates[name].append(r["ok_per_s"])
                cpu[name].append(used / r["ok"] * 1e6)
                client_cpu.append(r["client_cpu_s"] / r["elapsed_s"])
                log(f"  {tag}{name}: {r['ok_per_s']:.0f} acks/s "
                    f"({r['ok']} in {r['elapsed_s']:.1f}s, "
                    f"server CPU {used / r['ok'] * 1e6:.0f} us/req)")
    finally:
        env.stop(*(c for c, _, _ in servers.values()))
    best = {k: max(v) for k, v in rates.items()}
    return {
        "webhook_vs_flask": best["webhook"] / best["flask"],
        "webhook_acks_per_s": best["webhook"],
        "flask_acks_per_s": best["flask"],
        "_webhook": {
            "runs_acks_per_s": rates,
            "server_cpu_us_per_req": {k: min(v) for k, v in cpu.items()},
            "client": f"tongdai.benchmarks.loadgen, closed loop, {p.web_concurrency} in flight, "
                      "keep-alive when the server allows it (sync workers do not)",
            "client_cpu_share": max(client_cpu),
        },
    }


# -- 2. ingest vs RQ no-op ---------------------------------------------------------------------
def bench_ingest(env: BenchEnv, p: Params) -> dict:
    from rq import Queue

    from tongdai.benchmarks.noop import noop

    hub, r = env.hub, env.redis
    # Both sides of this ratio run with appendfsync everysec: with `always`, every one of RQ's
    # ~70 small writes per job waits for a disk flush (34 jobs/s here instead of ~300), which
    # would flatter the ratio. everysec is the condition of the ~300 jobs/s reference figure.
    fsync_before = r.config_get("appendfsync")["appendfsync"]
    r.config_set("appendfsync", "everysec")
    try:
        return _ingest_vs_noop(env, p, hub, r, Queue, noop)
    finally:
        r.config_set("appendfsync", fsync_before)


def _ingest_vs_noop(env, p, hub, r, Queue, noop) -> dict:
    # Ingest: M raw events waiting, one ingest loop enqueued, one worker in burst mode.
    env.reset()
    traffic = Traffic(seed=11, users=max(1, p.ingest_n // 5))  # 5 messages per conversation
    bodies = traffic.bodies(p.ingest_n)
    prefill_raw_log(env, bodies, wake=True)
    seq_key = hub.keys.seq("message")
    child = env.python("worker-ingest", "-m", "tongdai.benchmarks.workerproc", "ingest")
    try:
        t0 = wait_stamp(env, "bench:t0", child)
        deadline = time.monotonic() + 120
        while True:
            stored = int(r.get(seq_key) or 0)
            if stored >= p.ingest_n:
                t_end = time.time()
                break
            if child.proc.poll() is not None and int(r.get(seq_key) or 0) < p.ingest_n:
                raise RuntimeError(f"ingest worker exited with {stored}/{p.ingest_n} stored: "
                                   f"{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest: only {stored}/{p.ingest_n} stored in 120s")
            time.sleep(0.002)
    finally:
        env.stop(child)  # the loop would run out its time box; the figure is already taken
    dead = r.xlen(hub.keys.deadletter())
    ingest_rate = p.ingest_n / (t_end - t0)
    log(f"  ingest: {p.ingest_n} messages in {t_end - t0:.2f}s = {ingest_rate:.0f} msg/s "
        f"({dead} dead letters)")
    if dead:
        raise RuntimeError(f"ingest: {dead} events dead-lettered")

    # Baseline: N no-op jobs, one plain RQ worker in burst mode.
    env.reset()
    q = Queue("bench-noop", connection=r)
    for i in range(0, p.rq_n, 500):
        q.enqueue_many([Queue.prepare_data(noop, timeout=600, result_ttl=0, failure_ttl=86400)
                        for _ in range(min(500, p.rq_n - i))])
    child = env.python("worker-rq", "-m", "tongdai.benchmarks.workerproc", "rq", "bench-noop")
    try:
        t0 = wait_stamp(env, "bench:t0", child)
        child.proc.wait(timeout=300)
        t1 = wait_stamp(env, "bench:t1", child, timeout=1)
    finally:
        env.stop(child)
    left, failed = q.count, q.failed_job_registry.count
    if left or failed:
        raise RuntimeError(f"RQ baseline: {left} jobs left, {failed} failed: {child.tail()}")
    rq_rate = p.rq_n / (t1 - t0)
    log(f"  RQ no-op: {p.rq_n} jobs in {t1 - t0:.2f}s = {rq_rate:.0f} jobs/s")
    return {
        "ingest_vs_rq_noop": ingest_rate / rq_rate,
        "ingest_msgs_per_s": ingest_rate,
        "rq_noop_jobs_per_s": rq_rate,
        "_ingest": {"messages": p.ingest_n, "conversations": len(traffic.users),
                    "noop_jobs": p.rq_n, "shards": hub.shards,
                    "batch_size": hub.config.hub.ingest.batch_size,
                    "worker": "hub: rq.Worker (one long ingest job); baseline: rq.SimpleWorker "
                              "(no fork, RQ's fastest), burst, logging WARNING",
                    "appendfsync": "everysec (both sides)"},
    }
