"""``tongdai restore``: a backup back into an empty data directory or an empty Redis, checked.

Before anything is written: every file's SHA-256 against the manifest, the index key's
fingerprint, an empty target. After: the counts the manifest promised, and a sample of
conversations, their messages and customers decrypted with the keys of this environment.
Then the erasures the backup predates are done again (``td:erasures`` of newer backups beside
it, the ledger file beside them, ``--erasures`` files): a customer erased after the backup
stays erased (core/subjects.py).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tongdai.core.config import LoadedConfig
from tongdai.core.crypto import SUBJECT_PREFIX, Keyring
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub, connect
from tongdai.core.pipeline import store
from tongdai.core.redis_server import EmbeddedRedis
from tongdai.core.workspace import privacy
from tongdai.core.workspace.backup import (
    DUMP,
    ERASURES,
    FORMAT,
    LEDGER,
    MANIFEST,
    RDB,
    BackupError,
    Progress,
    blob_files,
    copy_file,
    count,
    file_sum,
    index_check,
    read_dump,
)

COUNTED = ("conversations", "messages", "customers", "keys")


def verify_files(src: Path) -> dict:
    """The manifest, once every file it lists is there with its checksum; else BackupError."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST}: not a tongdai backup, or an unfinished "
                          "one (.partial)") from None
    except ValueError as exc:
        raise BackupError(f"{src / MANIFEST} is not valid JSON ({exc}): the backup is "
                          "damaged") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src} is a backup of format {manifest.get('format')}; this "
                          f"tongdai reads format {FORMAT}")
    bad = []
    for rel, want in sorted(manifest["files"].items()):
        path = src / rel
        if not path.is_file():
            bad.append(f"{rel} is missing")
        elif (got := file_sum(path)) != want:
            bad.append(f"{rel} has sha256 {got['sha256'][:12]}…, {got['bytes']} bytes "
                       f"(manifest: {want['sha256'][:12]}…, {want['bytes']} bytes)")
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise BackupError(f"{src} is damaged: {'; '.join(bad[:5])}{more}. Nothing was "
                          "restored; use another backup")
    return manifest


def check_keys(manifest: dict, keyring: Keyring) -> None:
    """The environment's keys are the backup's (said before anything is written)."""
    probe = Hub.__new__(Hub)  # index_check needs only the keyring
    probe.keyring = keyring
    if index_check(probe) != manifest["index_key_check"]:
        raise BackupError("TONGDAI_INDEX_KEY is not the index key of the hub this backup "
                          "came from (its fingerprint differs): customers would not be found "
                          "by their identifiers. Fix: set the index key in use when the backup "
                          "was taken")
    ours, theirs = keyring.key_ids(), manifest["data_key_ids"]
    if theirs and theirs[0] not in ours:
        raise BackupError(f"the backup was written under data key {theirs[0]!r} (configured "
                          f"then: {', '.join(theirs)}); TONGDAI_DATA_KEYS here has "
                          f"{', '.join(ours)}. Fix: set TONGDAI_DATA_KEYS to include the "
                          "backup's keys")


def _nonempty(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())[:3] if path.is_dir() else (
        [path.name] if path.exists() else [])


def restore(src: Path, config: LoadedConfig, keyring: Keyring, *,
            target_dir: Path | None = None, redis_url: str | None = None,
            blobs_dir: Path | None = None, ledgers: list[Path] = (),
            progress: Progress | None = None, sample: int = 25) -> dict:
    """Restore ``src`` into ``target_dir`` (a new embedded data dir) or the Redis at
    ``redis_url`` (with the files into ``blobs_dir``); verify; erase again what was erased
    since. Returns a report."""
    progress = progress or Progress()
    src = Path(src)
    progress.stage("checksums", 1)
    manifest = verify_files(src)
    progress.advance(1)
    check_keys(manifest, keyring)
    prefix = manifest["prefix"]
    if prefix != config.hub.redis.prefix:
        raise BackupError(f"the backup's keys are under prefix {prefix!r}, the config's "
                          f"redis.prefix is {config.hub.redis.prefix!r}: set redis.prefix to "
                          f"{prefix!r} in {config.path} for the restore")
    rel_blobs = Path(config.hub.storage.blobs)
    if target_dir is not None:
        target_dir = Path(target_dir)
        if names := _nonempty(target_dir):
            raise BackupError(f"{target_dir} is not empty ({', '.join(names)}…): a restore "
                              "never mixes with existing data. Fix: restore into a new "
                              "directory, e.g. --data-dir ./var-restored")
        blobs_dir = rel_blobs if rel_blobs.is_absolute() else target_dir / rel_blobs
    if blobs_dir is not None and blob_files(Path(blobs_dir)):
        raise BackupError(f"{blobs_dir} already holds files: restore into an empty "
                          "storage.blobs")
    server = None
    if target_dir is not None:
        target_dir.mkdir(parents=True, exist_ok=True)
        server = EmbeddedRedis(target_dir, persistent=False)  # loads dump.rdb when there is one
    try:
        r = _load(src, manifest, server, redis_url, progress)
        if blobs_dir is not None:
            _copy_blobs(src, manifest, Path(blobs_dir), progress)
        hub = Hub(config, r, keyring)
        if blobs_dir is not None:
            from tongdai.core.blobs import BlobStore

            hub.__dict__["blobs"] = BlobStore(Path(blobs_dir), keyring)
        found = count(r, prefix)
        wrong = [f"{what}: {found[what]} restored, {manifest['counts'][what]} in the backup"
                 for what in COUNTED if found[what] != manifest["counts"][what]]
        if wrong:
            raise BackupError("the restored data does not match the backup's manifest: "
                              + "; ".join(wrong))
        sampled = check_sample(hub, manifest, sample)
        erased = erase_again(hub, src, manifest, ledgers)
    finally:
        if server is not None:
            server.stop()
    return {"counts": found, "sampled": sampled, "erased_again": erased,
            "target": str(target_dir) if target_dir is not None else "REDIS_URL",
            "blobs": str(blobs_dir) if blobs_dir is not None else None}


def _load(src: Path, manifest: dict, server: EmbeddedRedis | None, url: str | None,
          progress: Progress) -> redis.Redis:
    """Put the backup's keys into the target: the embedded server of a new data dir (left
    with its append-only file written) or the empty Redis at ``url``. Returns a client."""
    if server is None:
        r = connect(url)
        if n := r.dbsize():
            raise BackupError(f"the Redis at REDIS_URL holds {n} keys: a restore goes into an "
                              "empty Redis only. Fix: point REDIS_URL at a new, empty database")
        if manifest["mode"] == "rdb":
            with _rdb_server(src / RDB) as source:
                _restore_records(r, _records_of(source), manifest, progress)
        else:
            _restore_records(r, read_dump(src / DUMP), manifest, progress)
        return r
    if manifest["mode"] == "rdb":
        progress.stage("redis (snapshot)", 1)
        copy_file(src / RDB, server.data_dir / "dump.rdb")
        server.start(timeout=600)
        progress.advance(1)
        r = connect(server.url)
    else:
        server.start(timeout=600)
        r = connect(server.url)
        _restore_records(r, read_dump(src / DUMP), manifest, progress)
    # `tongdai up` runs it with the append-only file on: write that file now, from what is
    # loaded (Redis 6 started with appendonly on and no such file would start empty)
    r.config_set("appendonly", "yes")
    deadline = time.monotonic() + 600
    while True:
        info = r.info("persistence")
        if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress") and not \
                info.get("aof_rewrite_scheduled"):
            break
        if time.monotonic() > deadline:
            raise BackupError("the restored Redis did not finish writing its append-only file")
        time.sleep(0.05)
    if info.get("aof_last_bgrewrite_status") != "ok":
        raise BackupError("the restored Redis could not write its append-only file")
    return r


@contextmanager
def _rdb_server(rdb: Path) -> Iterator[redis.Redis]:
    with tempfile.TemporaryDirectory(prefix="td-rdb-") as tmp:
        shutil.copyfile(rdb, Path(tmp) / "dump.rdb")
        server = EmbeddedRedis(tmp, persistent=False)
        server.start(timeout=600)
        try:
            yield connect(server.url)
        finally:
            server.stop()


def _records_of(r: redis.Redis) -> Iterator[tuple[bytes, int, bytes]]:
    keys: list[bytes] = []
    for key in r.scan_iter(count=1000):
        keys.append(key)
        if len(keys) >= 500:
            yield from _dump_keys(r, keys)
            keys = []
    yield from _dump_keys(r, keys)


def _dump_keys(r: redis.Redis, keys: list[bytes]) -> Iterator[tuple[bytes, int, bytes]]:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = pipe.execute()
    for n, key in enumerate(keys):
        yield key, replies[2 * n + 1], replies[2 * n]


def _restore_records(r: redis.Redis, records, manifest: dict, progress: Progress) -> None:
    progress.stage("redis (keys)", manifest["counts"]["keys"])
    pipe = r.pipeline(transaction=False)
    for key, ttl, payload in records:
        pipe.restore(key, max(ttl, 0), payload)
        if len(pipe) >= 500:
            progress.advance(len(pipe))
            pipe.execute()
    progress.advance(len(pipe))
    pipe.execute()


def _copy_blobs(src: Path, manifest: dict, root: Path, progress: Progress) -> None:
    rels = [rel for rel in manifest["files"] if rel.startswith("blobs/")]
    progress.stage("files", len(rels))
    for rel in rels:
        got = copy_file(src / rel, root / rel.removeprefix("blobs/"))
        if got != manifest["files"][rel]:
            raise BackupError(f"{rel} changed while it was copied: restore again")
        progress.advance(1)


def check_sample(hub: Hub, manifest: dict, n: int) -> int:
    """Read ``n`` conversations spread over the ids, their newest messages and customers,
    decrypting as the console would; BackupError naming what failed."""
    pattern = f"{hub.keys.prefix}conv:*"
    ids = sorted(int(k.rsplit(b":", 1)[1]) for k in hub.redis.scan_iter(match=pattern, count=1000)
                 if k.rsplit(b":", 1)[1].isdigit())
    pick = ids[::max(1, len(ids) // n)][:n] if ids else []
    for cid in pick:
        what = f"conversation {cid}"
        try:
            conv = store.get_conversation(hub, str(cid))
            what = f"conversation {cid}'s messages"
            store.message_page(hub, str(cid), None, 5)
            if conv.customer_id:
                what = f"customer {conv.customer_id} (of conversation {cid})"
                store.get_customer(hub, conv.customer_id)
        except NotFound:
            continue
        except ValueError as exc:
            raise BackupError(
                f"{what} does not decrypt with the keys of this environment ({exc}). The "
                f"backup was written under data key(s) {', '.join(manifest['data_key_ids'])}; "
                f"TONGDAI_DATA_KEYS here has {', '.join(hub.keyring.key_ids())}. Fix: set the "
                "keys in use when the backup was taken") from None
    return len(pick)


def ledger_entries(src: Path, manifest: dict, extra: list[Path]) -> dict[str, dict]:
    """Erasures this backup may predate: newer backups' records beside it, the ledger file
    beside them, and the files given."""
    found: dict[str, dict] = {}
    for sibling in sorted(src.parent.iterdir()) if src.parent.is_dir() else []:
        if sibling != src and (sibling / ERASURES).is_file() and (sibling / MANIFEST).is_file():
            try:
                found.update(json.loads((sibling / ERASURES).read_text()))
            except ValueError:
                continue
    for path in [src.parent / LEDGER, *extra]:
        if not Path(path).is_file():
            continue
        text = Path(path).read_text()
        if Path(path).suffix != ".jsonl":
            found.update(json.loads(text))  # a backup's erasures.json
        else:
            for line in text.splitlines():
                if line.strip():
                    entry = json.loads(line)
                    found[entry.pop("customer")] = entry
    return found


def erase_again(hub: Hub, src: Path, manifest: dict, extra: list[Path]) -> list[str]:
    """Erase in the restored data every customer erased after the backup was taken (by id,
    and by their identities' key hashes: a merge since may have moved them)."""
    entries = ledger_entries(src, manifest, extra)
    if not entries:
        return []
    r, k = hub.redis, hub.keys
    hashes = {h for e in entries.values() for h in e.get("subjects", ())}
    who = set(entries)
    for key in r.scan_iter(match=f"{k.prefix}customer:*:identities", count=1000):
        for ident in r.hkeys(key):
            if hub.keyring.blind_index("subject", ident.decode())[:16] in hashes:
                who.add(key.decode().split(":")[-2])
    erased = []
    for cid in sorted(who, key=int):
        target = cid
        for _ in range(10):  # a customer merged since into another: erase that one
            try:
                result = privacy.erase_customer(hub, target, "restore")
            except NotFound:
                break
            except BadRequest:
                into = r.hget(k.customer(target), "merged_into")
                if not into:
                    break
                target = into.decode()
                continue
            if not result.get("already"):
                erased.append(target)
            break
    # keys of identities no restored customer holds any more
    stale = [kid for kid, _ in r.hscan_iter(k.subject_keys(), match=f"{SUBJECT_PREFIX}*")
             if kid.decode()[len(SUBJECT_PREFIX):].split(".")[0] in hashes]
    if stale:
        r.hdel(k.subject_keys(), *stale)
        r.incr(k.subject_erasures())
    return erased


def resolve_keyring(src: Path, current_data_dir: Path) -> tuple[Keyring, str, Path | None]:
    """The keys to restore with: the environment's, else the backup's own (``--with-keys``),
    else this machine's data dir key file. Returns (keyring, where from, key file or None)."""
    from tongdai.core.crypto import load_keyring
    from tongdai.core.errors import ConfigError

    if os.environ.get("TONGDAI_DATA_KEYS") or os.environ.get("TONGDAI_INDEX_KEY"):
        return load_keyring(Path(".")), "the environment", None
    for d, what in ((src / "keys", "the backup (--with-keys)"),
                    (current_data_dir, f"{current_data_dir}/keys.json")):
        try:
            return load_keyring(d), what, d / "keys.json"
        except ConfigError:
            continue
    raise BackupError("no customer-data keys: set TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY to "
                      "the keys in use when the backup was taken")
