"""``tongdai bench``: every figure is a ratio against a baseline measured here, now.

Sections (each against its own baseline, on the same machine, in the same run):

* webhook_vs_flask      signed Telegram webhooks acked/s ÷ bare Flask hello-world acks/s
* ingest_vs_rq_noop     messages stored/s by one worker ÷ RQ no-op jobs/s by one worker
* latency_p50/p99_ms    webhook accepted → message.created published, at 1,000 msg/s offered
* redis_bytes_per_message  Redis memory per stored message, beyond its text
* history_read_ratio    newest-50 page of a 100k-message conversation ÷ of a 100-message one
* parse_us_per_event    every built-in adapter's parse() over its test fixtures (adapter:
                        webhook over LINE's, through the example config's LINE mapping),
                        and parse_webhook_vs_telegram, the ratio of the two
* webhook_p99_with_500_streams_ms / stream_fanout_p95_ms   a whole floor of open consoles
* reply_latency_under_backlog_ms  p95 agent reply → platform, behind 10,000 queued profile
                        fetches and beside a channel answering after 15 s
* kpi_api_p95_ms        the KPI dashboard's API over 30 days of counters (1,000,000 messages)
* inbox_first_page_ms / search_ms   the inbox's first page and search over 100,000
                        conversations and 1,000,000 messages (p95), and their ratio to 10,000

Progress goes to stderr; stdout gets a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
import traceback

from tongdai.benchmarks.common import FULL, GUNICORN, QUICK
from tongdai.benchmarks.env import BenchEnv, log
from tongdai.benchmarks.kpis import bench_kpis  # issue #15: the KPI dashboard's API
from tongdai.benchmarks.latency import bench_latency
from tongdai.benchmarks.replies import bench_replies
from tongdai.benchmarks.rules import bench_rules  # issue #13: ingest with 232 rules
from tongdai.benchmarks.search import bench_search  # issue #17: search over all history
from tongdai.benchmarks.selfservice import bench_selfservice  # issue #14: the bot
from tongdai.benchmarks.storage import bench_history, bench_memory, bench_parse
from tongdai.benchmarks.streams import bench_streams
from tongdai.benchmarks.throughput import bench_ingest, bench_webhook

# Run sizes, helpers and the servers' settings: benchmarks/common.py; the sections:
# benchmarks/throughput.py, latency.py and storage.py.

TARGETS: dict[str, tuple[str, float]] = {
    "webhook_vs_flask": (">=", 0.9),
    "ingest_vs_rq_noop": (">=", 15),
    "latency_p50_ms": ("<=", 20),
    "latency_p99_ms": ("<=", 200),
    "redis_bytes_per_message": ("<=", 400),
    "history_read_ratio": ("<=", 1.2),
    "webhook_p99_with_500_streams_ms": ("<=", 50),
    "stream_fanout_p95_ms": ("<=", 500),
    "reply_latency_under_backlog_ms": ("<=", 1000),
    "parse_webhook_vs_telegram": ("<=", 3),
    "selfservice_answer_p95_ms": ("<=", 50),
    "kpi_api_p95_ms": ("<=", 200),
    "inbox_first_page_ms": ("<=", 50),
    "search_ms": ("<=", 200),
    "inbox_first_page_ratio": ("<=", 2),
    "search_ratio": ("<=", 2),
}


SECTIONS = [
    ("webhook", bench_webhook),
    ("ingest", bench_ingest),
    ("rules", bench_rules),
    ("latency", bench_latency),
    ("memory", bench_memory),
    ("history", bench_history),
    ("parse", bench_parse),
    ("streams", bench_streams),
    ("replies", bench_replies),
    ("selfservice", bench_selfservice),
    ("kpis", bench_kpis),
    ("search", bench_search),
]


# -- report ---------------------------------------------------------------------------------
def verdict(key: str, value: float | None) -> str:
    if key not in TARGETS:
        return "info"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "ERROR"
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return "PASS" if ok else "MISS"


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def table(res: dict, errors: dict, meta: dict) -> str:
    g = res.get
    rows = [
        ("webhook_vs_flask", g("webhook_vs_flask"),
         (f"webhook (uvicorn inbound) {_fmt(g('webhook_acks_per_s'))} acks/s vs Flask hello "
         f"{_fmt(g('flask_acks_per_s'))} acks/s")),
        ("ingest_vs_rq_noop", g("ingest_vs_rq_noop"),
         (f"ingest {_fmt(g('ingest_msgs_per_s'))} msg/s vs RQ no-op "
         f"{_fmt(g('rq_noop_jobs_per_s'))} jobs/s (1 worker each)")),
        ("latency_p50_ms", g("latency_p50_ms"),
         (f"webhook accepted -> stored; {_fmt(g('latency_send_rate'))} msg/s sent, "
         f"{_fmt(g('latency_accept_rate'))}/s acked")),
        ("latency_p99_ms", g("latency_p99_ms"),
         f"max {_fmt(res.get('_latency', {}).get('max_ms'))} ms"),
        ("redis_bytes_per_message", g("redis_bytes_per_message"),
         (f"beyond text; raw log {_fmt(g('raw_log_bytes_per_event'))} B/event, change feed "
          f"{_fmt(g('feed_bytes_per_event'))} B/event (bounded)")),
        ("history_read_ratio", g("history_read_ratio"),
         "newest 50: 100k-msg ÷ 100-msg conversation"),
    ]
    rep = res.get("_replies", {})
    rows.append(("reply_latency_under_backlog_ms", g("reply_latency_under_backlog_ms"),
                 (f"p95 reply -> platform; p50 {_fmt(rep.get('p50_ms'))} ms; "
                  f"{_fmt(rep.get('profiles_queued'))} profile fetches queued; 1 reply in "
                  f"{rep.get('slow_every')} to a channel answering after "
                  f"{_fmt(rep.get('slow_answer_after_s'))} s")))
    for variant, label in (("wsgi", "gunicorn gthread"), ("sync", "gunicorn -k sync")):
        th = res.get("_webhook", {}).get(variant)
        if th:
            rows.append((f"webhook_vs_flask[{variant}]", th["webhook_vs_flask"],
                         (f"Flask webhook route under {label} (plain-WSGI deployments): "
                          f"{_fmt(th['webhook_acks_per_s'])} vs Flask "
                          f"{_fmt(th['flask_acks_per_s'])}")))
    low = res.get("_latency", {}).get("low_rate")
    if low:
        rows.append((f"latency_p50_ms[{low['offered_rate']:g}/s]", low["latency_p50_ms"],
                     (f"p99 {_fmt(low['latency_p99_ms'])} ms at {_fmt(low['accept_rate'])}/s "
                     "accepted")))
    for name, us in sorted((g("parse_us_per_event") or {}).items()):
        rows.append((f"parse_us_per_event[{name}]", us, "µs per event, parse() only, fixtures"))
    if g("parse_webhook_vs_telegram") is not None:
        rows.append(("parse_webhook_vs_telegram", g("parse_webhook_vs_telegram"),
                     "adapter: webhook on LINE's payloads (the example's mapping) ÷ telegram"))
    ss = res.get("_selfservice", {})
    if g("selfservice_answer_p95_ms") is not None:
        rows.append(("selfservice_answer_p95_ms", g("selfservice_answer_p95_ms"),
                     (f"bot: match + reply enqueued, {ss.get('articles')} articles; answered "
                      f"ones p95 {_fmt(ss.get('answered_p95_ms'))} ms; {ss.get('outcomes')}")))
    kp = res.get("_kpis", {})
    if g("kpi_api_p95_ms") is not None:
        rows.append(("kpi_api_p95_ms", g("kpi_api_p95_ms"),
                     (f"/reports/kpis, 30 days by day, {_fmt(kp.get('messages'))} messages in "
                      f"{_fmt(kp.get('bucket_hashes'))} buckets; supervisor p95 "
                      f"{_fmt(kp.get('supervisor_p95_ms'))} ms; {kp.get('hourly_days')} days by channel "
                      f"per hour p95 "
                      f"{_fmt(kp.get('hourly_by_channel_p95_ms'))} ms")))
    se = res.get("_search", {})
    if g("search_ms") is not None:
        sizes = (f"{_fmt(se.get('conversations'))} conversations, {_fmt(se.get('messages'))} "
                 f"messages (built directly, not through ingest)")
        rows += [
            ("inbox_first_page_ms", g("inbox_first_page_ms"), f"p95, 50 rows; {sizes}"),
            ("search_ms", g("search_ms"),
             (f"p95 of {se.get('queries')} searches; index {_fmt(se.get('index_mb'))} MB, "
              f"reactor {_fmt(se.get('reactor_msgs_per_s'))} msg/s")),
            ("inbox_first_page_ratio", g("inbox_first_page_ratio"),
             f"p95 at {_fmt(se.get('messages'))} ÷ at {_fmt(se.get('small_messages'))} messages"),
            ("search_ratio", g("search_ratio"),
             f"p95 at {_fmt(se.get('messages'))} ÷ at {_fmt(se.get('small_messages'))} messages"),
        ]
        if se.get("note"):
            rows.append(("", None, f"search: {se['note']}"))
    lines = [f"{'figure':<30} {'value':>9}  {'target':<8} {'result':<6} detail", "-" * 100]
    for key, value, detail in rows:
        op, target = TARGETS.get(key, ("", None))
        tgt = f"{op} {target:g}" if target is not None else "-"
        lines.append(f"{key:<30} {_fmt(value):>9}  {tgt:<8} {verdict(key, value):<6} {detail}")
    for name, err in errors.items():
        lines.append(f"ERROR in {name}: {err}")
    lines.append("-" * 100)
    lines.append(f"Redis appendfsync {meta['appendfsync']} (persistent AOF); throughput server: "
                 f"{meta['web_server']}; {meta['cpus']} CPUs; {meta['mode']} run in "
                 f"{meta['duration_s']:.0f}s")
    return "\n".join(lines)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(as_json: bool = False, quick: bool = False, only: tuple[str, ...] = ()) -> dict:
    import os

    unknown = sorted(set(only) - {n for n, _ in SECTIONS})
    if unknown:
        raise SystemExit(f"no bench section {', '.join(unknown)}; choose from "
                         f"{', '.join(n for n, _ in SECTIONS)}")

    p = QUICK if quick else FULL
    started = time.monotonic()
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    res: dict = {}
    errors: dict[str, str] = {}
    try:
        with BenchEnv() as env:
            fsync = env.appendfsync
            for name, fn in SECTIONS:
                if only and name not in only:
                    continue
                log(f"{name} ...")
                t = time.monotonic()
                try:
                    res.update(fn(env, p))
                except Exception as exc:  # noqa: BLE001 — reported, the others still run
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    log(f"{name} FAILED: {errors[name]}\n{traceback.format_exc()}")
                log(f"{name} done in {time.monotonic() - t:.1f}s")
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    meta = {"mode": "quick" if quick else "full", "appendfsync": fsync,
            "web_server": "uvicorn asgi:create_inbound vs Flask hello under gunicorn "
            + " ".join(GUNICORN), "cpus": os.cpu_count(),
            "duration_s": time.monotonic() - started}
    figures = {k: v for k, v in res.items() if not k.startswith("_")}
    details = {k[1:]: v for k, v in res.items() if k.startswith("_")}
    # with --section, the figures of the sections left out are "not run" (not an ERROR)
    verdicts = {k: "not run" if only and k not in figures and not errors
                else verdict(k, figures.get(k)) for k in TARGETS}
    out = figures | {"targets": {k: f"{op} {t:g}" for k, (op, t) in TARGETS.items()},
                     "verdicts": verdicts, "details": details, "meta": meta, "errors": errors}
    if as_json:
        sys.stdout.write(json.dumps(out, ensure_ascii=False, default=float) + "\n")
    else:
        print(table(res, errors, meta))
    sys.stdout.flush()
    if errors:
        raise SystemExit(1)
    return out


if __name__ == "__main__":
    main(as_json="--json" in sys.argv, quick="--quick" in sys.argv)
