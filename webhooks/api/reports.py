"""Reports: SLA compliance per channel, queue and team (the insight dashboard builds on it)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest
from tongdai.core.pipeline import sla
from tongdai.core.workspace import access
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
    tzname = query.timezone or h.config.hub.notifications.timezone
    try:
        tz = ZoneInfo(tzname)
    except (ValueError, KeyError):
        raise BadRequest(f"{tzname!r} is not a time zone; write it like Asia/Ho_Chi_Minh") from None
    today = dt.datetime.fromtimestamp(now_ms() / 1000, tz).date()
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
