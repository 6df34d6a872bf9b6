"""``GET /healthz``: Redis, queue depths and live workers, for load balancers and people."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify
from rq import Queue, Worker

from tongdai.core.keys import INGEST_QUEUE, OUTBOUND_QUEUE
from tongdai.core.pipeline import rawlog

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 when Redis answers, with backlog figures; 503 when it does not."""
    hub = current_app.extensions["tongdai"]
    try:
        hub.redis.ping()
    except redis.RedisError as exc:
        return jsonify({"ok": False, "redis": f"unreachable: {type(exc).__name__}"}), 503
    raw = {"undelivered": 0, "pending": 0}
    for s in range(hub.shards):
        undelivered, pending, _ = rawlog.backlog(hub, s)
        raw["undelivered"] += undelivered
        raw["pending"] += pending
    jobs = {name: Queue(name, connection=hub.redis).count
            for name in (INGEST_QUEUE, OUTBOUND_QUEUE)}
    agent_queues = {q: hub.redis.zcard(hub.keys.queue(q)) for q in hub.config.hub.routing.queues}
    workers = Worker.all(connection=hub.redis)
    return jsonify({
        "ok": True,
        "redis": "ok",
        "raw_events": raw,
        "job_queues": jobs,
        "agent_queues": agent_queues,
        "workers": {"live": len(workers)},
        "dead_letters": hub.redis.xlen(hub.keys.deadletter()),
    })
