"""Scheduled backups (``backup:`` in the config): when one is due, who takes it, what is kept.

The ``backup`` tick of ``tongdai scheduler`` asks Redis's clock whether a backup is due
(``backup.every`` since the last good one, ``backup.retry`` after a failed one), takes the
claim ``td:backup:running`` (SET NX with a lease, compare-and-delete), looks again under the
claim, and runs the backup in a thread of its own (the other ticks go on). With two schedulers
one backup is taken. Retention keeps the newest backup of each of the last ``keep_daily``
days and ``keep_weekly`` ISO weeks that have one (UTC), like restic's ``--keep-daily``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from tongdai.core import clock
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.workspace import backup

log = logging.getLogger(__name__)
LEASE_MS = 6 * 3600 * 1000  # a backup running longer than this is presumed dead
_SLACK_MS = 60_000  # the tick runs every minute: a daily backup does not drift a minute a day
_STAMP = "tongdai-%Y%m%dT%H%M%SZ"


def due(hub: Hub, now_ms: int) -> bool:
    cfg = hub.config.hub.backup
    last = backup.last_good(hub)
    good = int(last.get("at", 0))
    tried = int(last.get("tried", 0))
    if now_ms - good < cfg.every * 1000 - _SLACK_MS:
        return False
    return tried <= good or now_ms - tried >= cfg.retry * 1000


def claim(hub: Hub) -> str | None:
    """The right to take the due backup, for this process (an owner token), or None: not
    due, or another scheduler has it. Decided on Redis's clock."""
    if not hub.config.hub.backup.enabled or not due(hub, clock.now_ms()):
        return None
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    if not hub.redis.set(hub.keys.backup_claim(), owner, nx=True, px=LEASE_MS):
        return None
    if not due(hub, clock.now_ms()):  # another finished one between our look and our claim
        release(hub, owner)
        return None
    return owner


def release(hub: Hub, owner: str) -> None:
    hub.scripts.release_lock(keys=[hub.keys.backup_claim()], args=[owner])


def run(hub: Hub, owner: str) -> Path | None:
    """Take the scheduled backup under the claim, prune, release. Returns its directory."""
    cfg = hub.config.hub.backup
    root = backup.backups_root(hub)
    now = clock.now_ms()
    dest = root / backup.backup_name(now)
    try:
        root.mkdir(parents=True, exist_ok=True)
        manifest = backup.take(hub, dest, with_keys=cfg.with_keys)
        log.info("backup written to %s in %.1f s (%d conversations, %d messages)", dest,
                 manifest["took_ms"] / 1000, manifest["counts"]["conversations"],
                 manifest["counts"]["messages"])
        removed = prune(root, cfg.keep_daily, cfg.keep_weekly)
        if removed:
            log.info("backup retention removed %s", ", ".join(p.name for p in removed))
        return dest
    except Exception as exc:
        log.exception("scheduled backup into %s failed", dest)
        hub.redis.hset(hub.keys.backup_last(), mapping={"tried": now,
                                                         "error": f"{type(exc).__name__}: {exc}"})
        return None
    finally:
        release(hub, owner)


@feed.tick("backup", 60.0)
def backup_tick(hub: Hub) -> None:
    """Start the due backup, if this scheduler gets it, in a thread: it may take minutes."""
    owner = claim(hub)
    if owner is not None:
        threading.Thread(target=run, args=(hub, owner), name="backup", daemon=True).start()


# -- retention --------------------------------------------------------------------------------------
def keep(stamps: list[datetime], keep_daily: int, keep_weekly: int) -> set[datetime]:
    """Which backups to keep: the newest of each of the last ``keep_daily`` days that have
    one, of each of the last ``keep_weekly`` ISO weeks that have one, and the newest."""
    kept: set[datetime] = set()
    days: set = set()
    weeks: set = set()
    for t in sorted(stamps, reverse=True):
        day, week = t.date(), t.isocalendar()[:2]
        if day not in days and len(days) < keep_daily:
            days.add(day)
            kept.add(t)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            kept.add(t)
    if stamps:
        kept.add(max(stamps))
    return kept


def prune(root: Path, keep_daily: int, keep_weekly: int,
          now: float | None = None) -> list[Path]:
    """Delete the backups under ``root`` retention does not keep (only complete ones this
    schedule named), and unfinished ``.partial`` ones older than a day."""
    found: dict[datetime, Path] = {}
    removed = []
    now = time.time() if now is None else now
    for path in root.iterdir() if root.is_dir() else []:
        if path.name.endswith(".partial"):
            if now - path.stat().st_mtime > 86400:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        try:
            stamp = datetime.strptime(path.name, _STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue
        if (path / backup.MANIFEST).is_file():
            found[stamp] = path
    kept = keep(list(found), keep_daily, keep_weekly)
    for stamp, path in sorted(found.items()):
        if stamp not in kept:
            shutil.rmtree(path)
            removed.append(path)
    return removed


# -- health ----------------------------------------------------------------------------------------
def health(hub: Hub) -> dict:
    """The last good backup's age for ``/healthz``: stale past ``backup.max_age`` (or none
    while scheduled backups are on)."""
    cfg = hub.config.hub.backup
    last = backup.last_good(hub)
    out: dict = {"scheduled": cfg.enabled}
    if "at" in last:
        age = max(0, clock.now_ms() - int(last["at"])) / 1000
        out.update(last_at=int(last["at"]), age_s=round(age), dir=last.get("dir"))
        out["stale"] = cfg.enabled and age > cfg.max_age
    else:
        out.update(last_at=None, age_s=None, stale=cfg.enabled)
    if last.get("error") and int(last.get("tried", 0)) > int(last.get("at", 0)):
        out["last_error"] = last["error"]
    return out
