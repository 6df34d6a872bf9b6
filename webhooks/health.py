"""``GET /healthz``: Redis, queues, lag and live workers, for load balancers and people."""

from __future__ import annotations

import shutil

import redis
from flask import Blueprint, current_app, jsonify
from rq import Worker

from tongdai.core import clock
from tongdai.core.hub import data_dir
from tongdai.core.pipeline import backlogs
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


def degraded(queues: list[backlogs.JobQueue], running: dict[str, int]) -> list[str]:
    """What the hub stores but does not get through: a queue no live worker serves, no
    reactor or scheduler process. Events are safe meanwhile; they wait."""
    found = [f"no live worker serves {q.name} ({q.depth} waiting): start `tongdai worker "
             f"--queues {backlogs.JOB_QUEUES[q.name]}`"
             for q in queues if q.name in backlogs.SERVED and q.workers == 0]
    if not running.get("reactor"):
        found.append("no reactor process runs (auto-assignment, outgoing webhooks, staff "
                     "group, agents' mail and SLA actions wait): start `tongdai reactor`")
    if not running.get("scheduler"):
        found.append("no scheduler runs (ingest loops are not replaced, SLA breaches and "
                     "snoozes wait): start `tongdai scheduler`")
    return found


@bp.get("/healthz")
def healthz():
    """``status``: "ok"; "degraded" (200) when events are stored but a queue has no live
    worker, or no reactor or scheduler runs, listed in ``degraded``; "down" (503) when the hub cannot
    take events (Redis down or restarting, its disk full), listed in ``problems``. A config
    edit this process could not apply is listed in ``problems`` (and ``config``) but keeps
    the 200."""
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
        return jsonify({"ok": False, "status": "down",
                        "redis": f"unreachable: {type(exc).__name__}",
                        "problems": wrong + config["problems"], "config": config}), 503
    now = clock.now_ms()
    raw = backlogs.raw_lag(hub, now)
    queues = backlogs.job_queues(hub, now)
    reactors = backlogs.reactor_lags(hub, now)
    running = backlogs.processes(hub)
    slow = degraded(queues, running)
    jobs = {q.name: q.depth for q in queues}
    jobs["waiting_sends"] = hub.redis.zcard(hub.keys.sends_due())  # retries, slow channels
    agent_queues = {q: hub.redis.zcard(hub.keys.queue(q)) for q in hub.config.hub.routing.queues}
    # a stale backup is a problem to fix, not a reason to stop taking events: still 200
    backups = backup_schedule.health(hub)
    stale = [(f"the last good backup is older than backup.max_age "
             f"({hub.config.hub.backup.max_age / 3600:g} h): see the scheduler's log, or run "
             "`tongdai backup`")] if backups["stale"] else []
    return jsonify({
        "ok": not wrong,
        "status": "down" if wrong else "degraded" if slow else "ok",
        "problems": wrong + config["problems"] + stale,
        "backup": backups,
        "degraded": slow,
        "config": config,
        "redis": "ok",
        "clock_offset_ms": clock.offset_ms(),
        "raw_events": {"undelivered": raw.behind, "pending": raw.pending},
        "ingest_lag_s": raw.oldest_age_s,
        "job_queues": jobs,
        "queues": {q.name: {"depth": q.depth, "oldest_job_age_s": q.oldest_age_s,
                            "failed": q.failed, "workers": q.workers} for q in queues},
        "reactors": {name: {"behind": lag.behind, "pending": lag.pending,
                            "lag_s": lag.oldest_age_s} for name, lag in reactors.items()},
        "processes": running,
        "agent_queues": agent_queues,
        "workers": {"live": len(Worker.all(connection=hub.redis))},
        "dead_letters": hub.redis.xlen(hub.keys.deadletter()),
    }), 503 if wrong else 200
