"""``tongdai backup``: a consistent copy of the hub — Redis, the files customers sent, the config.

Redis is copied one of two ways (docs/decisions.md, "Backups"):

- **RDB** when this machine can read the server's files (the embedded Redis, reached over its
  unix socket): ``BGSAVE``, waited for, checked with ``LASTSAVE`` and
  ``rdb_last_bgsave_status``, and the snapshot copied. It is one instant of the whole
  database, taken by a fork while traffic flows. The copy is then opened by a throw-away
  ``redis-server`` and counted, so a snapshot that does not load is never called good.
- **a logical dump** otherwise (a managed ``REDIS_URL``): ``DUMP``/``PTTL`` of every key
  under the hub's prefix (and RQ's ``rq:``), found by ``SCAN``. Each conversation's and each
  customer's keys are read in one ``MULTI``, so each is whole; the dump as a whole is not one
  instant (what is written while it runs may or may not be in it).

The data keys (``TONGDAI_DATA_KEYS``, the index key) are not copied unless asked: a backup
without them is ciphertext to whoever finds it. Every file is listed in ``manifest.json``
with its SHA-256, with the counts a restore must find. The backup is written into
``DIR.partial`` and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import redis

from tongdai.core import clock
from tongdai.core.errors import TongdaiError
from tongdai.core.hub import Hub, data_dir

FORMAT = 1
MANIFEST = "manifest.json"
RDB = "redis/dump.rdb"
DUMP = "redis/keys.dump"
ERASURES = "erasures.json"
LEDGER = "erasures.jsonl"  # beside the backups: erasures made since the newest one
KEYS_FILE = "keys/keys.json"
_DUMP_MAGIC = b"TDDUMP1\n"
_CHUNK = 1 << 20


class BackupError(TongdaiError):
    """A backup or restore that cannot be done, or did not check out; says what and why."""


class Progress:
    """What a long step reports (the CLI draws bars; the scheduler reports nothing)."""

    def stage(self, label: str, total: int) -> None:
        """A new step of ``total`` units begins."""

    def advance(self, n: int = 1) -> None:
        """``n`` more units of the current step are done."""


# -- counting: what a restore must find again --------------------------------------------------
def _patterns(prefix: str) -> dict[str, re.Pattern[bytes]]:
    p = re.escape(prefix.encode())
    return {"conversations": re.compile(p + rb"conv:\d+"),
            "messages": re.compile(p + rb"conv:\d+:messages"),
            "customers": re.compile(p + rb"customer:\d+")}


def count(r: redis.Redis, prefix: str) -> dict[str, int]:
    """Conversations, messages, customers and keys in a Redis (SCAN; messages by HLEN)."""
    pat = _patterns(prefix)
    n = {"keys": 0, "conversations": 0, "messages": 0, "customers": 0}
    pipe = r.pipeline(transaction=False)
    for key in r.scan_iter(count=1000):
        n["keys"] += 1
        if pat["conversations"].fullmatch(key):
            n["conversations"] += 1
        elif pat["customers"].fullmatch(key):
            n["customers"] += 1
        elif pat["messages"].fullmatch(key):
            pipe.hlen(key)
        if len(pipe) >= 500:
            n["messages"] += sum(pipe.execute())
    n["messages"] += sum(pipe.execute())
    return n


# -- files with checksums --------------------------------------------------------------------------
def copy_file(src: Path, dst: Path) -> dict:
    """Copy ``src`` to ``dst`` (fsync'd) and return its size and SHA-256."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while chunk := fi.read(_CHUNK):
            h.update(chunk)
            fo.write(chunk)
            size += len(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    return {"sha256": h.hexdigest(), "bytes": size}


def file_sum(path: Path) -> dict:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return {"sha256": h.hexdigest(), "bytes": size}


def blob_files(root: Path) -> list[Path]:
    """The stored files of a blob store (``xx/<sha256>``), not the ones being written."""
    if not root.exists():
        return []
    return sorted(p for p in root.glob("??/*") if p.is_file() and not p.name.endswith(".tmp"))


# -- Redis: RDB snapshot, or logical dump ----------------------------------------------------------
def local_redis_dir(r: redis.Redis) -> Path | None:
    """The server's data directory when this machine can read it (a unix-socket server, i.e.
    on this host: the embedded one), else None (then a logical dump is taken)."""
    if "path" not in r.connection_pool.connection_kwargs:
        return None
    try:
        d = Path(r.config_get("dir")["dir"])
    except redis.RedisError:
        return None
    return d if d.is_dir() and os.access(d, os.R_OK) else None


def bgsave(r: redis.Redis, timeout: float = 3600.0, progress: Progress | None = None) -> None:
    """Have the server write a fresh snapshot, and wait until it did, checking it worked."""
    deadline = time.monotonic() + timeout
    while r.info("persistence").get("rdb_bgsave_in_progress"):  # ours must start after now
        _wait(deadline, "a snapshot already being written")
    before = r.lastsave()
    # LASTSAVE counts whole seconds: start in a later second than the last save's, so that
    # "LASTSAVE moved" means "ours is written"
    while r.time()[0] <= before.timestamp():
        time.sleep(0.05)
    r.bgsave(schedule=True)  # behind an append-only-file rewrite, if one runs
    seen_running, started = False, time.monotonic()
    while True:
        info = r.info("persistence")
        running = bool(info.get("rdb_bgsave_in_progress"))
        seen_running |= running
        if not running and r.lastsave() > before:
            break
        if not running and info.get("rdb_last_bgsave_status") == "err" and (
                seen_running or (not info.get("aof_rewrite_in_progress")
                                 and time.monotonic() - started > 5)):
            raise BackupError("Redis could not write its snapshot (BGSAVE failed: disk full? "
                              "see the server's log); nothing was backed up")
        _wait(deadline, "BGSAVE")
    if r.info("persistence").get("rdb_last_bgsave_status") != "ok":
        raise BackupError("Redis reports its last snapshot (BGSAVE) failed; nothing was backed up")


def _wait(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise BackupError(f"gave up waiting for {what}")
    time.sleep(0.05)


def count_rdb(rdb: Path, prefix: str) -> dict[str, int]:
    """Open an RDB file in a throw-away redis-server and count it (it loads, or it fails)."""
    from tongdai.core.redis_server import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="td-rdb-") as tmp:
        try:
            os.link(rdb, Path(tmp) / "dump.rdb")
        except OSError:
            shutil.copyfile(rdb, Path(tmp) / "dump.rdb")
        server = EmbeddedRedis(tmp, persistent=False)
        try:
            server.start(timeout=600)
        except RuntimeError as exc:
            raise BackupError(f"the snapshot {rdb} does not load: {exc}") from None
        try:
            return count(redis.Redis.from_url(server.url), prefix)
        finally:
            server.stop()


def _entity(prefix: bytes, key: bytes) -> bytes:
    """Keys read together in one MULTI: a conversation's, a customer's."""
    if key.startswith((prefix + b"conv:", prefix + b"customer:")):
        parts = key.split(b":")
        return b":".join(parts[:prefix.count(b":") + 2])
    return key


def dump_logical(r: redis.Redis, prefix: str, out: Path, progress: Progress) -> dict:
    """DUMP every key of the hub (its prefix, and RQ's) into ``out``; returns the counts."""
    p = prefix.encode()
    groups: dict[bytes, list[bytes]] = {}
    for pattern in (prefix.replace("[", "\\[") + "*", "rq:*"):
        for key in r.scan_iter(match=pattern, count=1000):
            groups.setdefault(_entity(p, key), []).append(key)
    pat = _patterns(prefix)
    n = {"keys": 0, "conversations": 0, "messages": 0, "customers": 0}
    progress.stage("redis (logical dump)", sum(len(v) for v in groups.values()))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.write(_DUMP_MAGIC)
        batch: list[bytes] = []
        for keys in groups.values():
            batch += keys
            if len(batch) >= 200:
                _dump_batch(r, batch, f, pat, n)
                progress.advance(len(batch))
                batch = []
        if batch:
            _dump_batch(r, batch, f, pat, n)
            progress.advance(len(batch))
        f.flush()
        os.fsync(f.fileno())
    return n


def _dump_batch(r: redis.Redis, keys: list[bytes], f, pat, n: dict) -> None:
    pipe = r.pipeline(transaction=True)  # one MULTI: a conversation's keys agree
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
        if pat["messages"].fullmatch(key):
            pipe.hlen(key)
    replies = iter(pipe.execute())
    for key in keys:
        payload, ttl = next(replies), next(replies)
        size = next(replies) if pat["messages"].fullmatch(key) else 0
        if payload is None:
            continue  # gone between SCAN and DUMP
        f.write(struct.pack(">I", len(key)) + key + struct.pack(">qI", ttl, len(payload)))
        f.write(payload)
        n["keys"] += 1
        n["messages"] += size
        n["conversations"] += bool(pat["conversations"].fullmatch(key))
        n["customers"] += bool(pat["customers"].fullmatch(key))


def read_dump(path: Path) -> Iterator[tuple[bytes, int, bytes]]:
    """The (key, pttl, payload) records of a logical dump."""
    with open(path, "rb") as f:
        if f.read(len(_DUMP_MAGIC)) != _DUMP_MAGIC:
            raise BackupError(f"{path} is not a tongdai logical dump")
        while head := f.read(4):
            key = f.read(struct.unpack(">I", head)[0])
            ttl, size = struct.unpack(">qI", f.read(12))
            yield key, ttl, f.read(size)


# -- the backup ------------------------------------------------------------------------------------
def backup_name(ms: int) -> str:
    return "tongdai-" + datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def index_check(hub: Hub) -> str:
    """A fingerprint of the blind-index key (a restore with another one would not find
    customers by their identifiers: said before anything is written)."""
    return hub.keyring.blind_index("backup-check", "tongdai")[:16]


def take(hub: Hub, dest: Path, *, with_keys: bool = False, logical: bool = False,
         progress: Progress | None = None) -> dict:
    """Back the hub up into ``dest`` (which must not exist yet); returns the manifest."""
    progress = progress or Progress()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} already exists and is not empty: choose a new directory")
    work = dest.with_name(dest.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started, started_ms = time.monotonic(), clock.now_ms()
    r, prefix = hub.redis, hub.keys.prefix
    files: dict[str, dict] = {}
    redis_dir = None if logical else local_redis_dir(r)
    if redis_dir is not None:
        progress.stage("redis (BGSAVE)", 1)
        bgsave(r)
        progress.advance(1)
        src = redis_dir / r.config_get("dbfilename")["dbfilename"]
        files[RDB] = copy_file(src, work / RDB)
        counts = count_rdb(work / RDB, prefix)
        mode = "rdb"
    else:
        counts = dump_logical(r, prefix, work / DUMP, progress)
        files[DUMP] = file_sum(work / DUMP)
        mode = "logical"
    # Files after the snapshot: a message's file is written before the message, so every
    # file the snapshot names is here (files written since are extra, and harmless).
    blobs = blob_files(hub.blobs.root)
    progress.stage("files", len(blobs))
    for path in blobs:
        rel = f"blobs/{path.parent.name}/{path.name}"
        try:
            files[rel] = copy_file(path, work / rel)
        except FileNotFoundError:
            pass  # erased meanwhile
        progress.advance(1)
    counts["blobs"] = sum(1 for rel in files if rel.startswith("blobs/"))
    cfg = Path(hub.config.path)
    files[f"config/{cfg.name}"] = copy_file(cfg, work / "config" / cfg.name)
    ledger = {c.decode(): json.loads(v) for c, v in r.hgetall(hub.keys.erasures()).items()}
    (work / ERASURES).write_text(json.dumps(ledger, sort_keys=True))
    files[ERASURES] = file_sum(work / ERASURES)
    if with_keys:
        files[KEYS_FILE] = _write_keys(work / KEYS_FILE)
    manifest = {
        "format": FORMAT, "created_ms": started_ms,
        "created": datetime.fromtimestamp(started_ms / 1000, UTC).isoformat(),
        "mode": mode, "prefix": prefix, "redis_version": r.info("server")["redis_version"],
        "counts": counts, "files": files, "with_keys": with_keys,
        "data_key_ids": hub.keyring.key_ids(), "index_key_check": index_check(hub),
        "config_file": f"config/{cfg.name}", "erasures": len(ledger),
        "took_ms": int((time.monotonic() - started) * 1000),
    }
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    if dest.exists():
        dest.rmdir()
    os.replace(work, dest)
    record_good(hub, dest, manifest)
    return manifest


def _write_keys(path: Path) -> dict:
    """The data keys in the form of ``<data dir>/keys.json`` (file mode 600)."""
    env = {n: os.environ.get(n) for n in ("TONGDAI_DATA_KEYS", "TONGDAI_INDEX_KEY")}
    if all(env.values()):
        content = json.dumps(env).encode()
    else:
        content = (data_dir() / "keys.json").read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}


def record_good(hub: Hub, dest: Path, manifest: dict) -> None:
    """Remember the last good backup (``/healthz`` reports its age)."""
    hub.redis.hset(hub.keys.backup_last(), mapping={
        "at": manifest["created_ms"], "dir": str(Path(dest).resolve()),
        "took_ms": manifest["took_ms"], "counts": json.dumps(manifest["counts"])})
    hub.redis.hdel(hub.keys.backup_last(), "error")


def last_good(hub: Hub) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in hub.redis.hgetall(hub.keys.backup_last()).items()}


def backups_root(hub: Hub) -> Path:
    """Where scheduled backups go (``backup.dir``; relative: under the data directory)."""
    root = Path(hub.config.hub.backup.dir)
    return root if root.is_absolute() else data_dir() / root


def note_erasure(hub: Hub, customer_id: str) -> None:
    """Append an erasure to the ledger beside the backups (when there are backups on this
    machine), so a restore of the newest backup, made before it, erases it again even when
    the Redis that recorded it is gone."""
    raw = hub.redis.hget(hub.keys.erasures(), customer_id)
    root = backups_root(hub)
    if raw is None or not root.is_dir():
        return
    line = json.dumps({"customer": customer_id, **json.loads(raw)}) + "\n"
    with open(root / LEDGER, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
