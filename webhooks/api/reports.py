"""Reports: SLA compliance per channel, queue and team; support KPIs (the dashboard's figures)."""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

import orjson
from flask import Response, jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest
from tongdai.core.pipeline import sla
from tongdai.core.workspace import access
from tongdai.core.workspace import kpi_report as kpi_report_
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, Model, Strict

TAG = "reports"


class SlaQuery(Strict):
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    timezone: str | None = Field(None, max_length=64)


class SlaRow(Model):
    channel: str
    queue: str
    team: str | None
    target: str
    met: int
    breached: int
    compliance: float | None


class SlaReport(Model):
    since_ts: int
    until_ts: int
    timezone: str
    items: list[SlaRow]


@bp.get("/reports/sla")
@spec.validate(query=SlaQuery, resp=Resp(HTTP_200=SlaReport, **ERRORS), tags=[TAG])
def sla_report(query: SlaQuery):
    """SLA compliance from ``from`` to ``to`` (dates, ``to`` excluded, in ``timezone`` —
    default ``notifications.timezone``; default range: the last 7 days and today): waits met and breached per channel (the customer's),
    queue (and its team) and target (``first_response`` / ``next_response``), and
    met ÷ (met + breached). A wait counts once: when an agent answers it, or when the
    scheduler reports its breach. Supervisors see their teams' queues; admins all."""
    h, p = hub(), principal()
    access.require(p, "supervisor")
    tzname, tz, today = _zone(h, query.timezone)
    to = query.to or today + dt.timedelta(days=1)
    start = query.from_ or to - dt.timedelta(days=8)
    since = int(dt.datetime.combine(start, dt.time(0), tz).timestamp() * 1000)
    until = int(dt.datetime.combine(to, dt.time(0), tz).timestamp() * 1000)
    if until <= since:
        raise BadRequest("to must be after from")
    try:
        rows = sla.compliance(h, since, until)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    seen = access.visible_queues(h, p)
    items = []
    for (channel, queue, target), n in sorted(rows.items()):
        if seen is not None and queue not in seen:
            continue
        total = n["met"] + n["breached"]
        teams = access.teams_of_queue(h, queue)
        items.append({"channel": channel, "queue": queue, "team": teams[0] if teams else None,
                      "target": target, "met": n["met"], "breached": n["breached"],
                      "compliance": round(n["met"] / total, 4) if total else None})
    return jsonify({"since_ts": since, "until_ts": until, "timezone": tzname, "items": items})


class KpiQuery(Strict):
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None
    by: Literal["channel", "team", "agent", "tag", "language"] | None = None
    interval: Literal["hour", "day", "week"] = "day"
    timezone: str | None = Field(None, max_length=64)
    format: Literal["json", "csv"] = "json"
    table: Literal["series", "totals", "histogram"] = "series"


@bp.get("/reports/kpis")
@spec.validate(query=KpiQuery, resp=Resp(HTTP_200=None, **ERRORS), tags=[TAG])
def kpi_report(query: KpiQuery):
    """Support KPIs from ``from`` to ``to`` (dates, ``to`` excluded, in ``timezone`` — default
    ``notifications.timezone``; default range: the last 7 days and today) per ``interval``
    (hour, day, week from Monday), in total and per ``by`` value: conversations, messages,
    replies, first/next response time (average, p50/p90 from the histogram), handle and
    resolution time (business hours where an SLA policy has a calendar), reopen rate, SLA
    compliance (by channel and team), bot deflection, CSAT, NPS — null where nothing was
    measured (docs/workspace.md "KPIs"). JSON: ``buckets`` (starts, ms), ``total`` and
    ``groups[]`` each with ``totals`` and ``series``, the response-time ``histogram``, and
    ``available`` (false: no data yet). ``format=csv``: ``table=series`` (a row per group and
    bucket), ``totals`` (a row per group) or ``histogram``. Supervisors see their teams;
    admins all."""
    h, p = hub(), principal()
    access.require(p, "supervisor")
    tzname, _, today = _zone(h, query.timezone)
    try:
        to = query.to or today + dt.timedelta(days=1)
        start = query.from_ or to - dt.timedelta(days=8)
        r = kpi_report_.make_range(start, to, tzname, query.interval)
        teams = None if p.is_admin else set(p.teams)
        out = kpi_report_.report(h, r, query.by, teams, access.visible_queues(h, p))
    except OverflowError:  # a date at the calendar's very ends
        raise BadRequest("from and to must be dates between years 1 and 9999") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if query.format == "csv":
        body = kpi_report_.csv_table(out, query.table)
        name = f"kpis-{query.by or 'total'}-{query.table}-{start}-{to}.csv"
        return Response(body, 200, mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})
    return Response(orjson.dumps(out), 200, mimetype="application/json")


@bp.get("/reports/csat")
@spec.validate(resp=Resp(HTTP_200=None, **ERRORS), tags=[TAG])
def csat_report():
    """CSAT (1–5: count, average, share of 4–5 ``satisfied``) and NPS (0–10: count, average,
    ``nps`` = % 9–10 − % 0–6) in total and per channel, agent and team, all time, from the
    surveys (core/selfservice/surveys.py); ``skipped``: surveys not sent, per channel and why
    (admins). Supervisors see their teams' conversations only."""
    from tongdai.core.selfservice import surveys

    h, p = hub(), principal()
    access.require(p, "supervisor")
    return jsonify(surveys.report(h, None if p.is_admin else sorted(p.teams)))


def _zone(h, asked: str | None) -> tuple[str, ZoneInfo, dt.date]:
    """The report's time zone (asked, else ``notifications.timezone``) and today in it."""
    tzname = asked or h.config.hub.notifications.timezone
    try:
        tz = ZoneInfo(tzname)
    except (ValueError, KeyError):
        raise BadRequest(f"{tzname!r} is not a time zone; write it like Asia/Ho_Chi_Minh") from None
    return tzname, tz, dt.datetime.fromtimestamp(now_ms() / 1000, tz).date()
