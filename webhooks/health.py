"""``GET /healthz``: Redis, queue depths and live workers, for load balancers and people."""

from __future__ import annotations

import shutil

import redis
from flask import Blueprint, current_app, jsonify
from rq import Queue, Worker

from tongdai.core import clock
from tongdai.core.hub import data_dir
from tongdai.core.keys import BACKGROUND_QUEUE, INGEST_QUEUE, REPLIES_QUEUE
from tongdai.core.pipeline import rawlog
from tongdai.core.workspace import backup_schedule

bp = Blueprint("health", __name__)


LOW_DISK_BYTES = 16 * 1024 * 1024  # below this, say so before Redis fails to write


def problems(hub) -> list[str]:
    """What stops the hub from storing events, in words an operator can act on."""
    found = []
    try:
        persistence = hub.redis.info("persistence")
    except redis.RedisError as exc:
        return [(f"Redis is unreachable ({type(exc).__name__}): is it running? "
                "(`tongdai up` restarts its embedded one)")]
    if persistence.get("loading"):
        found.append("Redis is loading its data after a restart")
    if persistence.get("aof_enabled") and persistence.get("aof_last_write_status") == "err":
        found.append("Redis cannot write its append-only file (disk full?): webhooks answer "
                     "503 until it can")
    if persistence.get("rdb_last_bgsave_status") == "err":
        found.append("Redis's last snapshot (BGSAVE) failed (disk full?)")
    d = data_dir()
    if d.exists():
        free = shutil.disk_usage(d).free
        if free < LOW_DISK_BYTES:
            found.append(f"the data directory {d} has {free // 1024} KiB free")
    return found


@bp.get("/healthz")
def healthz():
    """200 when the hub can take events, with backlog figures; 503 with what is wrong when
    it cannot (Redis down or restarting, its disk full). A config edit this process could not
    apply is listed in ``problems`` (and ``config``) but keeps the 200."""
    hub = current_app.extensions["tongdai"]
    hub.watch.poll()  # (throttled) fresh even where no watch thread runs
    wrong = problems(hub)
    # An edit not applied is a problem to fix, not a reason to stop serving: the running
    # version goes on (core/config_watch.py), so it leaves the status 200.
    config = {"file": hub.config.path, "version": hub.config.version,
              "file_version": hub.watch.file_version, "problems": hub.watch.problems()}
    try:
        hub.redis.ping()
    except redis.RedisError as exc:
        return jsonify({"ok": False, "redis": f"unreachable: {type(exc).__name__}",
                        "problems": wrong + config["problems"], "config": config}), 503
    raw = {"undelivered": 0, "pending": 0}
    for s in range(hub.shards):
        undelivered, pending, _ = rawlog.backlog(hub, s)
        raw["undelivered"] += undelivered
        raw["pending"] += pending
    jobs = {name: Queue(name, connection=hub.redis).count
            for name in (INGEST_QUEUE, REPLIES_QUEUE, BACKGROUND_QUEUE)}
    jobs["waiting_sends"] = hub.redis.zcard(hub.keys.sends_due())  # retries, slow channels
    agent_queues = {q: hub.redis.zcard(hub.keys.queue(q)) for q in hub.config.hub.routing.queues}
    workers = Worker.all(connection=hub.redis)
    # a stale backup is a problem to fix, not a reason to stop taking events: still 200
    backups = backup_schedule.health(hub)
    stale = [(f"the last good backup is older than backup.max_age "
             f"({hub.config.hub.backup.max_age / 3600:g} h): see the scheduler's log, or run "
             "`tongdai backup`")] if backups["stale"] else []
    return jsonify({
        "ok": not wrong,
        "problems": wrong + config["problems"] + stale,
        "backup": backups,
        "config": config,
        "redis": "ok",
        "clock_offset_ms": clock.offset_ms(),
        "raw_events": raw,
        "job_queues": jobs,
        "agent_queues": agent_queues,
        "workers": {"live": len(workers)},
        "dead_letters": hub.redis.xlen(hub.keys.deadletter()),
    }), 503 if wrong else 200
