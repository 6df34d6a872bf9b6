"""Spike alerts (core/workspace/spikes.py): the alerts raised, and the current window checked
now. Supervisors and admins."""

from __future__ import annotations

from flask import jsonify
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.workspace import access, spike_alerts, spikes
from tongdai.webhooks.api import bp, hub, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, Model, Strict

TAG = "spikes"


class SpikeQuery(Strict):
    since_ts: int = Field(0, ge=0, description="alerts raised at or after this (ms)")
    limit: int = Field(50, ge=1, le=200)


class Sample(Model):
    conversation_id: str
    message_id: str
    channel: str
    text: str
    ts: int


class Alert(Model):
    id: str
    dim: str = Field(description="tag or channel")
    value: str
    ts: int = Field(description="when it was raised (ms)")
    since_ts: int = Field(description="the window counted: from (ms) ...")
    until_ts: int = Field(description="... to (ms, excluded)")
    count: int = Field(description="customers (conversations) who wrote in the window")
    median: float = Field(description="the usual count for that window (the baseline's median)")
    threshold: float = Field(description="the count above which it is a spike")
    baseline: str = Field(description="seasonal (same time of week) or recent (short history)")
    channels: list[str]
    samples: list[Sample] = Field(description="newest messages, of conversations you see")
    broadcast_url: str = Field(description="the console's broadcast page for these customers")


class AlertPage(Model):
    items: list[Alert]


class CheckRow(Model):
    dim: str
    value: str
    count: int
    median: float
    threshold: float
    baseline: str
    spike: bool


class CheckPage(Model):
    since_ts: int
    until_ts: int
    items: list[CheckRow]


@bp.get("/spikes")
@spec.validate(query=SpikeQuery, resp=Resp(HTTP_200=AlertPage, **ERRORS), tags=[TAG])
def spike_alerts_list(query: SpikeQuery):
    """Spike alerts, newest first: the tag or channel, customers in the window against the
    usual count, affected channels, sample messages (of conversations you may see) and the
    broadcast link. Supervisors and admins."""
    return jsonify({"items": spike_alerts.alerts_for(hub(), principal(), query.since_ts,
                                                     query.limit)})


@bp.get("/spikes/now")
@spec.validate(resp=Resp(HTTP_200=CheckPage, **ERRORS), tags=[TAG])
def spike_check():
    """The current window of every tag and channel written about in it, checked now against
    its baseline (raises nothing: the ``spikes`` reactor alerts). Supervisors and admins."""
    h = hub()
    access.require(principal(), "supervisor")
    checks = spikes.check_all(h)
    cfg = h.config.hub.spikes
    end = spikes.current_bucket(h)
    bms = int(cfg.bucket * 1000)
    return jsonify({
        "since_ts": (end + 1) * bms - int(cfg.window * 1000), "until_ts": (end + 1) * bms,
        "items": [{"dim": c.dim, "value": c.value, "count": c.count,
                   "median": c.baseline.median, "threshold": round(c.threshold, 2),
                   "baseline": c.baseline.kind, "spike": c.spike} for c in checks]})
