"""The ``kpis`` section of ``tongdai bench``: the dashboard's API over 30 days of counters.

The KPI counters of 30 days of a busy hub — 1,000,000 customer messages (about 200,000
conversations) on a daily cycle, 5 channels, 4 teams of 10 agents, 30 tags, 4 languages — are
written as the ``kpis`` reactor leaves them (core/workspace/kpis.py: hour and local-day
buckets per dimension, the hub's and each team's), without running a million events: what a
report costs is the number of bucket hashes and fields it reads, not how they were counted.
Per hour a shift's agents (15 of 40) and the tags of that hour (15 of 30) appear; per day all.
Hour buckets are written for the hub and for the one team whose supervisor is measured (a
report reads only its own scope's hashes; the other teams' would only take memory here).

Then ``GET /api/v1/reports/kpis`` through the Flask app (token auth, JSON), as the dashboard
asks it for the last 30 days by day: totals, by channel, by tag, by agent, by team — 20 rounds.
``kpi_api_p95_ms`` is the p95 over those calls (target <= 200 ms); the details add the same
for a supervisor of one team, and a 30-day report by channel per hour (720 hour buckets;
``--quick`` writes and reads the hours of 2 days only, and runs 3 rounds).

KPI updates do not touch ingest: the counters move in the ``kpis`` reactor (``tongdai
reactor``, its own process), so ``ingest_vs_rq_noop`` measures the ingest worker as before.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from zoneinfo import ZoneInfo

from tongdai.benchmarks.common import Params
from tongdai.benchmarks.env import BenchEnv, log

TARGET_MS = 200.0
MESSAGES = 1_000_000
DAYS = 30
CHANNELS = [f"ch-{i}" for i in range(5)]
TEAMS = [f"team-{i}" for i in range(4)]
AGENTS = {f"agent-{i:02d}": TEAMS[i % 4] for i in range(40)}
TAGS = [f"tag-{i:02d}" for i in range(30)]
LANGS = ["vi", "en", "zh-Hans", "zh-Hant"]


def _cell(rng: random.Random, msgs: int) -> dict[str, int]:
    """Counters of ``msgs`` customer messages' worth of work (as the reactor names them)."""
    conv = max(1, msgs // 5)
    c = {"in": msgs, "conv": conv, "out": msgs, "asg": conv, "resolved": conv,
         "reopened": conv // 20, "frt_n": conv, "frt_ms": conv * rng.randint(60, 900) * 1000,
         "nrt_n": msgs - conv, "nrt_ms": (msgs - conv) * rng.randint(60, 1800) * 1000,
         "res_n": conv, "res_ms": conv * rng.randint(600, 7200) * 1000, "aht_n": conv,
         "aht_ms": conv * rng.randint(300, 3600) * 1000, "ss": conv // 3,
         "ss_handoff": conv // 9, "ss_helped": conv // 12, "csat_n": conv // 4,
         "csat_sum": conv // 4 * 4, "nps_n": conv // 10, "nps_sum": conv // 10 * 8,
         "nps_pro": conv // 20, "nps_pas": conv // 40, "nps_det": conv // 40}
    for s in range(1, 6):
        c[f"csat_s{s}"] = conv // 20
    for i in range(2, 9):  # response times spread over seven of the histogram's bins
        c[f"frt_h{i}"] = conv // 7
        c[f"nrt_h{i}"] = (msgs - conv) // 7
    return c


def _bucket(rng: random.Random, msgs: int, agents: list[str], tags: list[str],
            teams: list[str]) -> dict[str, dict[str, int]]:
    """dim → {"value␟metric": n} of one bucket (the hub's, or one team's)."""
    from tongdai.core.workspace.kpis import SEP

    rows = {"all": {"": msgs}, "channel": {c: msgs // len(CHANNELS) for c in CHANNELS},
            "team": {t: msgs // len(teams) for t in teams},
            "agent": {a: msgs // len(agents) for a in agents},
            "tag": {t: msgs * 2 // len(tags) for t in tags},  # 1-2 tags a conversation
            "lang": {la: msgs // 4 for la in LANGS}}
    out: dict[str, dict[str, int]] = {}
    for dim, values in rows.items():
        fields = out[dim] = {}
        for value, m in values.items():
            for metric, n in _cell(rng, max(m, 1)).items():
                if n:
                    fields[f"{value}{SEP}{metric}"] = n
    return out


def populate(hub, end_ms: int, tz: str, hour_days: int = DAYS) -> dict:
    """30 days of counters before ``end_ms`` (a local midnight): day buckets, and hour
    buckets for the last ``hour_days`` of them."""
    rng = random.Random(15)
    z, H = ZoneInfo(tz), 3_600_000
    # a daily cycle: quiet at night, busy at 10:00 and 20:00 (local time)
    weight = [1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 9, 7, 8, 9, 9, 8, 8, 9, 10, 10, 8, 5, 2]
    per_day = MESSAGES / DAYS
    pipe, n_keys, n_fields = hub.redis.pipeline(transaction=False), 0, 0

    def put(key: str, fields: dict[str, int]) -> None:
        nonlocal n_keys, n_fields
        if fields:
            pipe.hset(key, mapping=fields)
            n_keys, n_fields = n_keys + 1, n_fields + len(fields)
        if len(pipe) >= 200:
            pipe.execute()

    start = end_ms - DAYS * 86_400_000
    for d in range(DAYS):
        day0 = start + d * 86_400_000
        day = dt.datetime.fromtimestamp(day0 / 1000, z).strftime("%Y%m%d")
        for team in (None, *TEAMS):
            agents = [a for a, t in AGENTS.items() if team in (None, t)]
            scope = () if team is None else ("team", team)
            msgs = int(per_day / (1 if team is None else len(TEAMS)))
            for dim, f in _bucket(rng, msgs, agents, TAGS, TEAMS if team is None else [team]
                                  ).items():
                put(hub.keys.kpi("d", day, dim, *scope), f)
        for h in range(24 if d >= DAYS - hour_days else 0):
            t = day0 + h * H
            local = dt.datetime.fromtimestamp(t / 1000, z).hour
            msgs = int(per_day * weight[local] / sum(weight))
            on_shift = rng.sample(sorted(AGENTS), 15)
            tags = rng.sample(TAGS, 15)
            for team in (None, TEAMS[0]):  # the hub's and the measured supervisor's team
                agents = [a for a in on_shift if team in (None, AGENTS[a])] or on_shift[:1]
                scope = () if team is None else ("team", team)
                m = msgs if team is None else msgs // len(TEAMS)
                for dim, f in _bucket(rng, m, agents, tags,
                                      TEAMS if team is None else [team]).items():
                    put(hub.keys.kpi("h", t // H, dim, *scope), f)
    pipe.execute()
    return {"keys": n_keys, "fields": n_fields}


def _p95(ms: list[float]) -> float:
    return sorted(ms)[max(0, int(len(ms) * 0.95) - 1)] if ms else float("nan")


def _teams_hub(env: BenchEnv):
    """The bench's config with the four teams (each working its own queue)."""
    import yaml

    from tongdai.benchmarks.env import CONFIG
    from tongdai.core.config import load_config
    from tongdai.core.hub import Hub

    cfg = yaml.safe_load(CONFIG)
    queues = [f"q-{i}" for i in range(len(TEAMS))]
    cfg["routing"]["queues"] += queues
    cfg["teams"] = [{"id": t, "queues": [q]} for t, q in zip(TEAMS, queues, strict=True)]
    path = env.dir / "tongdai-kpis.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return Hub(load_config(str(path)), env.hub.redis, env.hub.keyring)


def bench_kpis(env: BenchEnv, p: Params) -> dict:
    from tongdai.core.clock import now_ms
    from tongdai.core.workspace import tokens
    from tongdai.webhooks import create_app

    env.reset()
    hub = _teams_hub(env)
    tz = hub.config.hub.notifications.timezone
    z = ZoneInfo(tz)
    today = dt.datetime.fromtimestamp(now_ms() / 1000, z).date()
    end = int(dt.datetime.combine(today, dt.time(0), z).timestamp() * 1000)
    t0 = time.perf_counter()
    quick = p.ingest_n < 10_000  # --quick (the test suite's smoke run): hours of 2 days
    hour_days = 2 if quick else DAYS
    made = populate(hub, end, tz, hour_days)
    fill_s = time.perf_counter() - t0
    mem = hub.redis.info("memory")["used_memory"]
    log(f"  kpis: {made['keys']:,} bucket hashes, {made['fields']:,} fields written in "
        f"{fill_s:.1f} s ({mem / 1e6:.0f} MB in Redis)")
    client = create_app(hub).test_client()
    admin = {"Authorization": f"Bearer {tokens.create(hub, 'bench-kpi', 'admin')}"}
    sup = {"Authorization": "Bearer " + tokens.create(hub, "bench-kpi-sup", "supervisor",
                                                      [TEAMS[0]])}
    span = {"from": str(today - dt.timedelta(days=DAYS)), "to": str(today)}
    rounds = 3 if quick else 20

    def timed(headers: dict, **q) -> float:
        t = time.perf_counter()
        r = client.get("/api/v1/reports/kpis", query_string={**span, **q}, headers=headers)
        took = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise RuntimeError(f"/api/v1/reports/kpis answered {r.status_code}: "
                               f"{r.get_data(as_text=True)[:200]}")
        return took

    dashboard, supervisor, hourly = [], [], []
    bys = (None, "channel", "tag", "agent", "team")
    for _ in range(rounds):
        for by in bys:
            q = {"by": by} if by else {}
            dashboard.append(timed(admin, **q))
            supervisor.append(timed(sup, **q))
        hourly.append(timed(admin, by="channel", interval="hour",
                            **{"from": str(today - dt.timedelta(days=hour_days))}))
    p95 = _p95(dashboard)
    log(f"  kpis: dashboard API over {DAYS} days by day p95 {p95:.1f} ms (target <= "
        f"{TARGET_MS:g}: {'PASS' if p95 <= TARGET_MS else 'MISS'}), supervisor p95 "
        f"{_p95(supervisor):.1f} ms, {hour_days} days by channel per hour p95 "
        f"{_p95(hourly):.1f} ms")
    return {"kpi_api_p95_ms": p95,
            "_kpis": {"messages": MESSAGES, "days": DAYS, "bucket_hashes": made["keys"],
                      "fields": made["fields"], "fill_s": round(fill_s, 1),
                      "redis_mb": round(mem / 1e6), "calls": len(dashboard),
                      "p50_ms": sorted(dashboard)[len(dashboard) // 2],
                      "max_ms": max(dashboard), "supervisor_p95_ms": _p95(supervisor),
                      "hourly_by_channel_p95_ms": _p95(hourly), "hourly_days": hour_days,
                      "target": f"<= {TARGET_MS:g}"}}
