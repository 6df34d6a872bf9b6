"""KPI reports: the counters of core/workspace/kpis.py added up over a range, per hour, day or
week in a time zone, by one dimension, with SLA compliance from the SLA counters
(``td:sla:stats``, core/pipeline/sla.py).

Day and week reports in the configured time zone read the day buckets (one hash per day and
dimension: a 30-day report is 30 reads); hourly ones, and reports in another time zone, read
the hour buckets (kept 62 days). Nothing scans conversations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from tongdai.core.hub import Hub
from tongdai.core.pipeline import sla
from tongdai.core.workspace.access import teams_of_queue
from tongdai.core.workspace.kpis import EDGES_S, HOUR_TTL_S, fields_of

BY = {"channel": "channel", "team": "team", "agent": "agent", "tag": "tag", "language": "lang"}
INTERVALS = ("hour", "day", "week")
H = 3_600_000
MAX_DAYS = 400
# The figures of one cell, in the order of the CSV columns.
FIGURES = ("conversations", "messages_in", "replies", "assigned", "first_response_avg_s",
           "first_response_p50_s", "first_response_p90_s", "next_response_avg_s",
           "next_response_p90_s", "handle_time_avg_s", "resolution_avg_s", "resolved",
           "reopened", "reopen_rate", "sla_met", "sla_breached", "sla_compliance",
           "bot_conversations", "bot_handoffs", "bot_helped", "deflection_rate", "csat_count",
           "csat_avg", "csat_satisfied", "nps_count", "nps")


@dataclass
class Range:
    since_ms: int
    until_ms: int
    tz: str
    interval: str
    buckets: list[int] = field(default_factory=list)  # each bucket's start (ms)


def make_range(since: dt.date, until: dt.date, tz: str, interval: str) -> Range:
    """Local midnights ``since`` to ``until`` (excluded) in ``tz``, cut per ``interval``
    (weeks start on Monday; the first and last may be partial)."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    if until <= since:
        raise ValueError("to must be after from")
    if (until - since).days > MAX_DAYS:
        raise ValueError(f"a KPI range is at most {MAX_DAYS} days")
    z = ZoneInfo(tz)
    ms = lambda d: int(dt.datetime.combine(d, dt.time(0), z).timestamp() * 1000)
    r = Range(ms(since), ms(until), tz, interval)
    if interval == "hour":
        r.buckets = list(range(r.since_ms, r.until_ms, H))
    else:
        d, step = since, dt.timedelta(days=1)
        while d < until:
            if interval == "day" or d == since or d.weekday() == 0:
                r.buckets.append(ms(d))
            d += step
    return r


def _sources(hub: Hub, r: Range, dim: str, teams: set[str] | None) -> list[tuple[str, int]]:
    """(key, bucket index) of every bucket hash the range covers: the hub's, or the teams'."""
    from bisect import bisect_right

    idx = lambda t: bisect_right(r.buckets, t) - 1
    scopes = [()] if teams is None else [("team", t) for t in sorted(teams)]
    if r.interval != "hour" and r.tz == hub.config.hub.notifications.timezone:
        z, days = ZoneInfo(r.tz), []
        d = dt.datetime.fromtimestamp(r.since_ms / 1000, z).date()
        while (t := int(dt.datetime.combine(d, dt.time(0), z).timestamp() * 1000)) < r.until_ms:
            days.append((d.strftime("%Y%m%d"), idx(t)))
            d += dt.timedelta(days=1)
        return [(hub.keys.kpi("d", day, dim, *sc), i) for day, i in days for sc in scopes]
    if r.until_ms - r.since_ms > HOUR_TTL_S * 1000:
        raise ValueError("hourly figures (and reports in another time zone) are kept "
                         f"{HOUR_TTL_S // 86400} days: ask for a shorter range")
    return [(hub.keys.kpi("h", t // H, dim, *sc), idx(t))
            for t in range(r.since_ms, r.until_ms, H) for sc in scopes]


def _read(hub: Hub, r: Range, dim: str, teams: set[str] | None
          ) -> dict[str, list[dict[str, int]]]:
    """value → per bucket: metric → n, of the hub (``teams`` None) or of those teams."""
    src = _sources(hub, r, dim, teams)
    pipe = hub.redis.pipeline(transaction=False)
    for k, _ in src:
        pipe.hgetall(k)
    out: dict[str, list[dict[str, int]]] = {}
    nb = len(r.buckets)
    for (_, i), raw in zip(src, pipe.execute(), strict=True):
        for value, metric, n in fields_of(raw):
            cells = out.get(value)
            if cells is None:
                cells = out[value] = [{} for _ in range(nb)]
            cell = cells[i]
            cell[metric] = cell.get(metric, 0) + n
    return out


def _sla(hub: Hub, r: Range, dim: str, queues: set[str] | None
         ) -> dict[str, list[dict[str, int]]]:
    """SLA waits met / breached per bucket from ``td:sla:stats`` (kept per channel and queue:
    by channel, by team and in total; other dimensions have none)."""
    from bisect import bisect_right

    if dim not in ("all", "channel", "team"):
        return {}
    hours = range(r.since_ms // H, (r.until_ms - 1) // H + 1)
    pipe = hub.redis.pipeline(transaction=False)
    for h in hours:
        pipe.hgetall(hub.keys.sla_stats(h))
    out: dict[str, list[dict[str, int]]] = {}
    for h, raw in zip(hours, pipe.execute(), strict=True):
        i = bisect_right(r.buckets, h * H) - 1
        if i < 0:
            continue
        for f, n in raw.items():
            channel, queue, _target, outcome = f.decode().split(sla.SEP)
            if queues is not None and queue not in queues:
                continue
            if dim == "team":
                teams = teams_of_queue(hub, queue)
                if not teams:
                    continue
                value = teams[0]
            else:
                value = channel if dim == "channel" else ""
            cells = out.setdefault(value, [{} for _ in r.buckets])
            m = f"sla_{outcome}"
            cells[i][m] = cells[i].get(m, 0) + int(n)
    return out


def percentile(c: dict[str, int], prefix: str, q: float) -> float | None:
    """An upper bound of the ``q`` quantile from the histogram: the upper edge of the bin it
    falls in (``q`` of the times were at most this long); past the last edge, that edge."""
    n = c.get(f"{prefix}_n", 0)
    if not n:
        return None
    want, seen = q * n, 0
    for i, edge in enumerate(EDGES_S):
        seen += c.get(f"{prefix}_h{i}", 0)
        if seen >= want:
            return float(edge)
    return float(EDGES_S[-1])


def figures(c: dict[str, int]) -> dict[str, float | int | None]:
    """The KPIs of one cell of counters (None: nothing to measure yet)."""
    if not c:
        return dict(_EMPTY)
    g = c.get
    avg = lambda p: round(g(f"{p}_ms", 0) / g(f"{p}_n") / 1000, 1) if g(f"{p}_n") else None
    share = lambda a, b: round(a / b, 4) if b else None
    met, br = g("sla_met", 0), g("sla_breached", 0)
    csat_n, nps_n = g("csat_n", 0), g("nps_n", 0)
    return {
        "conversations": g("conv", 0), "messages_in": g("in", 0), "replies": g("out", 0),
        "assigned": g("asg", 0),
        "first_response_avg_s": avg("frt"), "first_response_p50_s": percentile(c, "frt", .5),
        "first_response_p90_s": percentile(c, "frt", .9), "next_response_avg_s": avg("nrt"),
        "next_response_p90_s": percentile(c, "nrt", .9), "handle_time_avg_s": avg("aht"),
        "resolution_avg_s": avg("res"), "resolved": g("resolved", 0),
        "reopened": g("reopened", 0), "reopen_rate": share(g("reopened", 0), g("resolved", 0)),
        "sla_met": met, "sla_breached": br, "sla_compliance": share(met, met + br),
        "bot_conversations": g("ss", 0), "bot_handoffs": g("ss_handoff", 0),
        "bot_helped": g("ss_helped", 0),
        "deflection_rate": share(g("ss", 0) - g("ss_handoff", 0), g("ss", 0)),
        "csat_count": csat_n, "csat_avg": round(g("csat_sum", 0) / csat_n, 2) if csat_n else None,
        "csat_satisfied": share(g("csat_s4", 0) + g("csat_s5", 0), csat_n),
        "nps_count": nps_n,
        "nps": round(100 * (g("nps_pro", 0) - g("nps_det", 0)) / nps_n, 1) if nps_n else None,
    }


_EMPTY: dict = {}


def _sum(cells: Iterable[dict[str, int]]) -> dict[str, int]:
    tot: dict[str, int] = {}
    for c in cells:
        for m, n in c.items():
            tot[m] = tot.get(m, 0) + n
    return tot


def _merge(a: dict[str, list[dict[str, int]]], b: dict[str, list[dict[str, int]]], nb: int
           ) -> dict[str, list[dict[str, int]]]:
    for value, cells in b.items():
        mine = a.setdefault(value, [{} for _ in range(nb)])
        for i, c in enumerate(cells):
            mine[i].update(c)
    return a


def histogram(c: dict[str, int], prefix: str) -> list[int]:
    return [c.get(f"{prefix}_h{i}", 0) for i in range(len(EDGES_S) + 1)]


_EMPTY.update(figures({"conv": 0}))


def report(hub: Hub, r: Range, by: str | None, teams: set[str] | None,
           queues: set[str] | None) -> dict:
    """Totals, per-bucket series and the response-time histogram, overall and per ``by``
    value (``teams``/``queues``: what a supervisor may see; None: an admin, everything)."""
    nb = len(r.buckets)
    rows = {}
    if by:
        dim = BY[by]
        rows = _merge(_read(hub, r, dim, teams), _sla(hub, r, dim, queues), nb)
    if by == "channel":  # every event counts in exactly one channel: the total is their sum
        cells = [_sum(col) for col in zip(*rows.values(), strict=True)] if rows else []
    else:
        total = _merge(_read(hub, r, "all", teams), _sla(hub, r, "all", queues), nb)
        cells = total.get("", [])
    cells = cells or [{} for _ in range(nb)]
    tot = _sum(cells)
    out = {"since_ts": r.since_ms, "until_ts": r.until_ms, "timezone": r.tz,
           "interval": r.interval, "by": by, "buckets": r.buckets,
           "histogram": {"edges_s": list(EDGES_S), "first_response": histogram(tot, "frt"),
                         "next_response": histogram(tot, "nrt")},
           "total": {"totals": figures(tot), "series": _series(cells)},
           "available": {"sla": bool(tot.get("sla_met") or tot.get("sla_breached")),
                         "csat": bool(tot.get("csat_n")), "nps": bool(tot.get("nps_n")),
                         "deflection": bool(tot.get("ss"))},
           "groups": []}
    if by:
        groups = [{"key": v, "totals": figures(_sum(c)), "series": _series(c)}
                  for v, c in rows.items()]
        groups.sort(key=lambda g: (-g["totals"]["conversations"], -g["totals"]["messages_in"],
                                   g["key"]))
        if by == "agent":  # replies by an API token (not a console user): counted, marked "api"
            people = {n.decode() for n in hub.redis.smembers(hub.keys.users())}
            for g in groups:
                g["api"] = g["key"] not in people
        out["groups"] = groups
    return out


def _series(cells: list[dict[str, int]]) -> dict[str, list]:
    rows = [figures(c) for c in cells]
    return {f: [row[f] for row in rows] for f in FIGURES}


def csv_table(rep: dict, table: str) -> str:
    """One table of a report as CSV (a header row; times in the report's zone, ISO 8601)."""
    import csv
    import io

    z = ZoneInfo(rep["timezone"])
    when = lambda ms: dt.datetime.fromtimestamp(ms / 1000, z).isoformat()
    by = rep["by"] or "total"
    groups = rep["groups"] if rep["by"] else [{"key": "", **rep["total"]}]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    if table == "histogram":
        w.writerow(["from_s", "to_s", "first_responses", "next_responses"])
        edges, hist = rep["histogram"]["edges_s"], rep["histogram"]
        for i in range(len(edges) + 1):
            w.writerow([edges[i - 1] if i else 0, edges[i] if i < len(edges) else "",
                        hist["first_response"][i], hist["next_response"][i]])
    elif table == "totals":
        w.writerow([by, *FIGURES])
        for g in groups:
            w.writerow([_cell(g["key"]), *(_cell(g["totals"][f]) for f in FIGURES)])
    else:
        w.writerow(["bucket_start", by, *FIGURES])
        for g in groups:
            for i, start in enumerate(rep["buckets"]):
                w.writerow([when(start), _cell(g["key"]),
                            *(_cell(g["series"][f][i]) for f in FIGURES)])
    return buf.getvalue()


def _cell(v) -> str:
    """A CSV cell: empty for "not measured"; text a spreadsheet would run as a formula is
    quoted with a leading apostrophe (a tag or agent name is user input)."""
    if v is None:
        return ""
    s = str(v)
    return "'" + s if isinstance(v, str) and s[:1] in ("=", "+", "-", "@", "\t", "\r") else s
