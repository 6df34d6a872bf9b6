"""``GET /metrics``: Prometheus text, for a bearer token (``metrics.token`` or an admin's).

Two sources, each counted once: the host's per-process counters (``core/metrics.py``: webhooks,
messages stored, sends, live streams — summed over every process that shares the directory)
and figures Redis already holds, read at scrape time by :class:`RedisCollector` (queues, lag,
dead letters, SLA reports). The Redis figures are the whole hub's, the same from every web
process that answers: aggregate them with ``max``, the process counters with ``sum``.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tongdai.core import metrics
from tongdai.core.clock import now_ms
from tongdai.core.errors import Forbidden, Unauthorized
from tongdai.core.hub import Hub
from tongdai.core.pipeline import backlogs

bp = Blueprint("metrics", __name__)

# td:stats fields (prefix:channel) → the counter they become
_STATS = {
    "sla-warning": ("tongdai_sla_warnings",
                    "SLA warnings reported (a wait reached sla.warning_at of its target)"),
    "sla-breach": ("tongdai_sla_breaches",
                   "SLA breaches reported (a wait passed its target unanswered)"),
    "ignored": ("tongdai_events_ignored",
                "Signed deliveries with nothing the hub can mean (dropped, counted)"),
}


class RedisCollector:
    """The hub's state, read from Redis when Prometheus scrapes (~60 commands, ~15 round trips)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self):
        hub, r = self.hub, self.hub.redis
        now = now_ms()
        depth = GaugeMetricFamily("tongdai_job_queue_depth", "Jobs waiting in an RQ queue",
                                  labels=["queue"])
        age = GaugeMetricFamily("tongdai_job_queue_oldest_seconds",
                                "Age of the job waiting longest in an RQ queue (0: none)",
                                labels=["queue"])
        failed = GaugeMetricFamily("tongdai_job_queue_failed", "Failed jobs kept by RQ",
                                   labels=["queue"])
        workers = GaugeMetricFamily("tongdai_workers", "Live RQ workers serving a queue",
                                    labels=["queue"])
        for q in backlogs.job_queues(hub, now):
            depth.add_metric([q.name], q.depth)
            age.add_metric([q.name], q.oldest_age_s)
            failed.add_metric([q.name], q.failed)
            workers.add_metric([q.name], q.workers)
        yield from (depth, age, failed, workers)

        raw = backlogs.raw_lag(hub, now)
        yield GaugeMetricFamily("tongdai_ingest_lag_seconds", "Age of the oldest raw event "
                                "not yet processed by ingest (0: nothing waits)",
                                value=raw.oldest_age_s)
        waiting = GaugeMetricFamily("tongdai_raw_events_waiting", "Raw events not processed "
                                    "yet: undelivered (capped at 1,000 per shard on Redis < 7)"
                                    " or pending (read, not acknowledged)", labels=["state"])
        waiting.add_metric(["undelivered"], raw.behind)
        waiting.add_metric(["pending"], raw.pending)
        yield waiting

        lag = GaugeMetricFamily("tongdai_reactor_lag_seconds", "Age of the oldest change-feed "
                                "event a reactor has not handled yet (0: caught up)",
                                labels=["reactor"])
        behind = GaugeMetricFamily("tongdai_reactor_events_behind", "Change-feed events a "
                                   "reactor has not handled yet (unread, capped at 1,000 on "
                                   "Redis < 7, plus pending)", labels=["reactor"])
        for name, one in backlogs.reactor_lags(hub, now).items():
            lag.add_metric([name], one.oldest_age_s)
            behind.add_metric([name], one.behind + one.pending)
        yield from (lag, behind)
        running = GaugeMetricFamily("tongdai_processes", "Running hub processes by role (web, "
                                    "inbound, worker:<queues>, reactor, scheduler; a killed "
                                    "one counts up to 3 minutes)", labels=["role"])
        for role, n in backlogs.processes(hub).items():
            running.add_metric([role], n)
        yield running

        pipe = r.pipeline(transaction=False)
        queues = list(hub.config.hub.routing.queues)
        for q in queues:
            pipe.zcard(hub.keys.queue(q))
        pipe.xlen(hub.keys.deadletter())
        pipe.zcard(hub.keys.sends_due())
        pipe.zcard(hub.keys.sla_due())
        pipe.zcount(hub.keys.sla_due(), "-inf", now)
        pipe.hgetall(hub.keys.stats())
        got = pipe.execute()
        agent = GaugeMetricFamily("tongdai_agent_queue_depth", "Conversations waiting in an "
                                  "agents' queue", labels=["queue"])
        for q, n in zip(queues, got, strict=False):
            agent.add_metric([q], n)
        yield agent
        dead, sends_waiting, sla_running, sla_overdue, stats = got[len(queues):]
        yield GaugeMetricFamily("tongdai_dead_letters", "Dead letters kept (tongdai "
                                "deadletter list)", value=dead)
        yield GaugeMetricFamily("tongdai_sends_waiting", "Sends waiting for their time "
                                "(retries, rate-limit slots, slow channels)", value=sends_waiting)
        yield GaugeMetricFamily("tongdai_sla_waits_running", "Conversations waiting for an "
                                "agent's answer under a response-time target", value=sla_running)
        yield GaugeMetricFamily("tongdai_sla_overdue", "Of those, the ones past their target "
                                "now", value=sla_overdue)
        families = {p: CounterMetricFamily(n, d, labels=["channel"]) for p, (n, d) in
                    _STATS.items()}
        for field, n in stats.items():
            prefix, _, channel = field.decode().partition(":")
            if prefix in families and ":" not in channel:
                families[prefix].add_metric([channel], int(n))
        yield from families.values()
        raised = CounterMetricFamily("tongdai_spike_alerts", "Spike alerts raised "
                                     "(docs/spikes.md)", labels=["dim"])
        for dim in ("tag", "channel"):
            raised.add_metric([dim], int(stats.get(f"spike:{dim}".encode(), 0)))
        yield raised
        from tongdai.core.workspace import backup_schedule

        b = backup_schedule.health(hub)
        if b["age_s"] is not None:  # none yet: no sample (alert on absent() as well)
            yield GaugeMetricFamily("tongdai_backup_age_seconds", "Age of the last good backup "
                                    "(tongdai backup)", value=b["age_s"])
        yield GaugeMetricFamily("tongdai_backup_stale", "1 when scheduled backups are on and the "
                                "last good one is older than backup.max_age (or missing)",
                                value=int(bool(b["stale"])))


def _authorise(hub: Hub) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send 'Authorization: Bearer <token>': metrics.token from the "
                           "config, or an admin's API token")
    configured = hub.config.hub.metrics.token
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        return
    from tongdai.webhooks.api import principal_from_token

    p = principal_from_token(hub, token)
    if p is None:
        raise Unauthorized("unknown or revoked token")
    if not p.is_admin:
        raise Forbidden("metrics are for the metrics token or an admin's token")


@bp.get("/metrics")
def scrape() -> Response:
    """Every metric of this host's processes and of the hub's Redis, Prometheus text format."""
    hub = current_app.extensions["tongdai"]
    _authorise(hub)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.HostCollector())
    registry.register(RedisCollector(hub))
    return Response(generate_latest(registry), 200, content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
