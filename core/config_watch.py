"""Config life: a running process picks up an edited config file, or says why it does not.

Each long-running process looks at its config file at safe points — between ingest batches,
before each RQ job, per scheduler tick and reactor round, in a thread of its own in web
processes — at most every ``CHECK_S`` seconds: a ``stat`` (mtime, size, inode) and, only when
that moved, a read and a content hash. A new version is loaded and validated as at start-up:

- valid, and nothing in it is bound at start: applied (``Hub.apply_config`` swaps one
  reference; what is built from the config — adapters whose settings changed, the memo'd
  classifier, SLA plan, ... — is rebuilt from the new one; work in flight ends on the old);
- invalid: the running version goes on; one error naming file, key and fix is logged, and
  /healthz and ``tongdai config status`` show it until the file is fixed;
- valid but it changes a key bound at start (``RESTART_KEYS``, an adapter's
  ``restart_settings``): nothing of it is applied — no process runs half an edit — and it is
  reported as needing a restart.

Each process keeps a record of what it runs in ``Keys.config_processes`` (version, last error,
keyed fingerprints of the config's parts for ``tongdai config check --diff``). Several hosts:
each process reads its own host's file; the records show every host's version side by side.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from tongdai.core import clock
from tongdai.core.config import ConfigInvalid, LoadedConfig, file_version, load_config
from tongdai.core.errors import ConfigError

if TYPE_CHECKING:  # the hub builds its watch: no import at run time (no cycle)
    from tongdai.core.hub import Hub

log = logging.getLogger(__name__)
# Seconds between two looks at the file (tests shorten it; 0 looks at every safe point).
CHECK_S = float(os.environ.get("TONGDAI_CONFIG_CHECK_S", "2"))
HEARTBEAT_S = 30.0  # a running process refreshes its record this often
STALE_S = 180.0  # `config status` forgets records older than this (a process that stopped)
# Keys (and whatever is under them) a process binds at start: the key prefix and the embedded
# server's fsync, the streams' layout and the ingest loops' slots, where files are kept.
# Not in the file, and needing a restart as ever: REDIS_URL, the data dir, ports, process
# counts (`tongdai up` options, the Procfile).
RESTART_KEYS = ("redis", "ingest.shards", "ingest.consumers", "storage.blobs")
RACY_NS = 2_000_000_000  # a file modified this recently is hashed even when its stat is equal


def parts(config: LoadedConfig, sign) -> dict[str, str]:
    """The config cut into keys (``tagging.rules``, ``channels[tg].settings.bot_token``), each
    with ``sign(text)``, a keyed fingerprint of its value: two versions compare key by key,
    and no value (secrets included) leaves the process."""
    def fp(value: Any) -> str:
        return sign(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))[:12]

    out: dict[str, str] = {}
    for name, value in config.hub.model_dump(mode="json").items():
        if name == "channels":
            for ch in value:
                out[f"channels[{ch['id']}].adapter"] = fp(ch["adapter"])
                for key, v in ch["settings"].items():
                    out[f"channels[{ch['id']}].settings.{key}"] = fp(v)
        elif name == "teams":
            for team in value:
                out[f"teams[{team['id']}]"] = fp(team)
        elif isinstance(value, dict) and value:
            for key, v in value.items():
                out[f"{name}.{key}"] = fp(v)
        else:
            out[name] = fp(value)
    return out


def changed_keys(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The keys whose values differ between two ``parts`` (added and removed ones too)."""
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def restart_keys(config: LoadedConfig) -> set[str]:
    """The channel settings of this config that processes bind at start."""
    return {f"channels[{cid}].settings.{name}"
            for cid, (cls, _) in config.channel_settings.items()
            for name in getattr(cls, "restart_settings", ())}


def needing_restart(changed: list[str], extra: set[str]) -> list[str]:
    """The changed keys that only a restart can apply (``extra``: from ``restart_keys``)."""
    return [k for k in changed
            if k in extra or any(k == r or k.startswith(r + ".") for r in RESTART_KEYS)]


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _listed(keys: list[str], most: int = 8) -> str:
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


class ConfigWatch:
    """One process's eye on its config file (``hub.watch``)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.path = hub.config.path
        self.check_s = CHECK_S
        self.name = ""  # role@host:pid once ``start`` names the process; no record before
        self.file_version = hub.config.version  # the version on disk when last read
        self.errors: list[ConfigError] = []  # why the file's version is not running
        self.pending: list[str] = []  # the file's keys that wait for a restart
        self.loaded_ms = clock.now_ms()
        self._stat: tuple[int, int, int] | None = None  # None: read the file at the first look
        self._next = 0.0
        self._recorded = 0.0
        self._parts: tuple[str, dict[str, str]] = ("", {})
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- the look ----------------------------------------------------------------------------
    def poll(self, force: bool = False) -> str:
        """Look at the file when due (or now, ``force``, waiting for a look under way in
        another thread) and apply a new valid version.

        Returns ``same``, ``applied``, ``invalid``, ``restart``, ``reverted`` (the file is
        back to the running version) or ``busy`` (another thread is looking). Never raises:
        the work it sits between goes on with the version it has."""
        now = time.monotonic()
        if not force and now < self._next:
            return "same"
        if self._pid != os.getpid():  # a forked work horse: the lock may have been held
            self._lock, self._pid = threading.Lock(), os.getpid()
        if not self._lock.acquire(blocking=force):
            return "busy"
        try:
            self._next = now + self.check_s
            try:
                outcome = self._look()
            except Exception:  # a look never stops an ingest loop or a request
                log.exception("config: looking at %s failed; version %s keeps running",
                              self.path, self.hub.config.version)
                outcome = "same"
            if self.name and (outcome != "same" or now - self._recorded >= HEARTBEAT_S):
                self.record()
            return outcome
        finally:
            self._lock.release()

    def _look(self) -> str:
        sig = _stat(self.path)
        # An unchanged stat proves nothing for a file written within the file system's
        # timestamp granularity (two saves of one size in the same tick): read it then.
        if sig is not None and sig == self._stat and time.time_ns() - sig[0] > RACY_NS:
            return "same"
        self._stat = sig
        try:
            version = file_version(Path(self.path).read_bytes())
        except OSError:
            version = "(missing)"
        if version == self.file_version:
            return "same"  # touched or rewritten with the same content
        self.file_version = version
        running = self.hub.config
        if version == running.version:
            self.errors, self.pending = [], []
            log.info("config: %s is back to version %s, the one running", self.path, version)
            return "reverted"
        try:
            new = load_config(self.path)
        except (ConfigInvalid, UnicodeDecodeError) as exc:
            self.errors, self.pending = getattr(exc, "errors", None) or [ConfigError(
                self.path, "(file)", "not UTF-8 text", "save the file as UTF-8")], []
            if self._first_to_say(version):
                log.error("config: %s (version %s) is not applied, version %s keeps running:"
                          "\n  %s", self.path, version, running.version,
                          "\n  ".join(str(e) for e in self.errors))
            else:  # (debug: under `tongdai up` a dozen processes would each say it)
                log.debug("config: version %s is invalid, version %s keeps running (the error: "
                          "logged once per host, /healthz, `tongdai config status`)", version,
                          running.version)
            return "invalid"
        self.file_version = new.version  # what was read, should the file have moved again
        changed = changed_keys(self._parts_of(running), self._parts_of(new))
        restart = needing_restart(changed, restart_keys(running) | restart_keys(new))
        if restart:
            self.errors, self.pending = [], restart
            log.log(logging.WARNING if self._first_to_say(new.version) else logging.INFO,
                    "config: %s (version %s) changes %s, which a restart applies: nothing of "
                    "it is applied, version %s keeps running", self.path, new.version,
                    _listed(restart), running.version)
            return "restart"
        self.hub.apply_config(new)
        self.errors, self.pending = [], []
        self.loaded_ms = clock.now_ms()
        log.info("config: %s version %s applied (was %s): %s", self.path, new.version,
                 running.version, _listed(changed) or "no setting changed")
        return "applied"

    def _first_to_say(self, version: str) -> bool:
        """True for the first process of this host to find ``version`` wrong: the processes
        of `tongdai up` share a terminal, which should show the error once, not once each."""
        try:
            return bool(self.hub.redis.set(
                self.hub.keys.config_said(socket.gethostname(), version), self.name or "?",
                nx=True, ex=86400))
        except redis.RedisError:
            return True

    def _parts_of(self, config: LoadedConfig) -> dict[str, str]:
        if self._parts[0] != config.version or not config.version:
            self._parts = (config.version, parts(
                config, lambda text: self.hub.keyring.blind_index("config", text)))
        return self._parts[1]

    def problems(self) -> list[str]:
        """Why the file's version is not running, in words for /healthz."""
        run = self.hub.config.version
        if self.errors:
            return [f"config not applied (version {run} keeps running): {e}"
                    for e in self.errors]
        if self.pending:
            return [(f"config {self.path} (version {self.file_version}) changes "
                     f"{_listed(self.pending)}: restart every process to apply it (version "
                     f"{run} keeps running)")]
        return []

    # -- the record in Redis -----------------------------------------------------------------
    def start(self, role: str) -> None:
        """Name this process (``web``, ``worker:ingest``, ...) and keep its record."""
        self.name = f"{role}@{socket.gethostname()}:{os.getpid()}"
        self.record()

    def record(self) -> None:
        """Write what this process runs to ``Keys.config_processes``."""
        cfg = self.hub.config
        rec = {"file": os.path.abspath(self.path), "version": cfg.version,
               "generation": self.hub.generation, "loaded": self.loaded_ms,
               "seen": clock.now_ms(), "file_version": self.file_version,
               "errors": [str(e) for e in self.errors], "pending": self.pending,
               "parts": self._parts_of(cfg), "restart": sorted(restart_keys(cfg))}
        self._recorded = time.monotonic()
        try:
            self.hub.redis.hset(self.hub.keys.config_processes(), self.name, json.dumps(rec))
        except redis.RedisError as exc:  # the status record waits; the work does not
            log.warning("config: could not record this process's version (%s)",
                        type(exc).__name__)

    def forget(self) -> None:
        """Remove this process's record (it is stopping)."""
        if self.name:
            try:
                self.hub.redis.hdel(self.hub.keys.config_processes(), self.name)
            except redis.RedisError:
                pass

    def in_background(self, stop: threading.Event) -> threading.Thread:
        """Look every ``check_s`` in a thread (web processes: no safe point of their own)."""
        def run() -> None:
            while not stop.wait(max(0.2, self.check_s)):
                self.poll()

        thread = threading.Thread(target=run, name="config-watch", daemon=True)
        thread.start()
        return thread


def processes(r: redis.Redis, key: str) -> dict[str, dict[str, Any]]:
    """Every running process's record (``ConfigWatch.record``) under ``key``
    (``Keys.config_processes``), by process name; records not refreshed within ``STALE_S``
    are dropped."""
    out, stale = {}, []
    oldest = clock.now_ms() - STALE_S * 1000
    for name, raw in r.hgetall(key).items():
        rec = json.loads(raw)
        if rec.get("seen", 0) < oldest:
            stale.append(name)
        else:
            out[name.decode()] = rec
    if stale:
        r.hdel(key, *stale)
    return dict(sorted(out.items()))
