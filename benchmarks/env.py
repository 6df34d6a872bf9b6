"""The benchmark's private world: a temp dir, an embedded Redis, a config, child processes.

Everything started here is stopped by ``BenchEnv.close`` (also on errors and Ctrl-C): child
processes are started in their own session and killed by process group, and any descendants
that left the group (RQ work horses call ``setpgrp``) are found through /proc and killed too.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import redis

import tongdai.core.workspace  # noqa: F401  (an entry point: registers the workspace)

REPO = Path(__file__).resolve().parent.parent
CHANNEL = "tg-bench"
SECRET = "bench-secret_123"
TOKEN = "123456:BENCH-token_abcdefghijklmnop"

CONFIG = f"""\
# written by `tongdai bench`: defaults everywhere (redis.appendfsync included) but the channels,
# a few rules and SLA policies
tagging:
  rules:
    - tag: payment
      any: ["nạp thẻ", "nap the", "nạp tiền", "thẻ cào", "top up"]
    - tag: refund
      any: ["hoàn tiền", "refund", "trả lại tiền"]
    - tag: account
      any: ["mật khẩu", "đăng nhập", "password", "login"]
routing:
  default_queue: general
  queues: [general, billing]
  rules:
    - {{tags_any: [payment, refund], queue: billing, priority: 50}}
# SLA as a team sets it up: due and warning instants worked out per message on a calendar
sla:
  policies:
    - {{name: urgent, priority_min: 50, first_response: 5m, next_response: 10m}}
    - {{name: social, adapters: [telegram, facebook, zalo], calendar: office,
       first_response: 15m, next_response: 30m}}
calendars:
  office:
    timezone: Asia/Ho_Chi_Minh
    hours: {{mon-fri: "08:00-12:00, 13:30-17:30", sat: "08:00-12:00"}}
    holidays: [VN]
channels:
  - id: {CHANNEL}
    adapter: telegram
    settings:
      bot_token: "{TOKEN}"
      secret_token: "{SECRET}"
      api_base: "http://127.0.0.1:9"
  # One channel per built-in adapter, so `parse_us_per_event` measures each (nothing is sent).
  - id: bench-fb
    adapter: facebook
    settings:
      page_id: "1122334455"
      page_access_token: "EAAbenchPageToken0123456789"
      app_secret: "0123456789abcdef0123456789abcdef"
      verify_token: "bench-verify"
      graph_base: "http://127.0.0.1:9/v25.0"
  - id: bench-zalo
    adapter: zalo
    settings:
      oa_id: "388613280878808645"
      app_id: "3608465248940903967"
      oa_secret_key: "bench-oa-secret-key"
      app_secret: "bench-app-secret"
      access_token: "bench-access-token"
      refresh_token: "bench-refresh-token"
      api_base: "http://127.0.0.1:9"
      oauth_base: "http://127.0.0.1:9"
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(pid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def _children(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from /proc; Linux)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (rest := stat_fields(d)) is not None:
            parent[int(d)] = int(rest[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


class Child:
    def __init__(self, name: str, proc: subprocess.Popen, logfile: Path) -> None:
        self.name, self.proc, self.logfile = name, proc, logfile

    def tail(self, n: int = 1500) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 8.0) -> None:
        p = self.proc
        if p.poll() is not None:
            return
        stragglers = _children(p.pid)
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        for pid in stragglers:  # e.g. an RQ work horse in its own process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class BenchEnv:
    """Temp dir + embedded Redis + config + env for children. Use as a context manager."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tongdai-bench-"))
        self.children: list[Child] = []
        self.server = None
        self.hub = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from tongdai.core.config import load_config
        from tongdai.core.redis_server import EmbeddedRedis

        cfg_path = self.dir / "tongdai.yaml"
        cfg_path.write_text(CONFIG, encoding="utf-8")
        config = load_config(str(cfg_path))
        self.appendfsync = config.hub.redis.appendfsync
        self.server = EmbeddedRedis(self.dir / "redis", appendfsync=self.appendfsync,
                                    persistent=True)
        self.server.start()
        self.url = self.server.url
        self.env = dict(os.environ)
        self.env.update({
            "TONGDAI_CONFIG": str(cfg_path),
            "REDIS_URL": self.url,
            "TONGDAI_DATA_DIR": str(self.dir / "redis"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                          if p),
        })
        # This process works on the same hub as its children.
        self._saved_env = {k: os.environ.get(k) for k in ("TONGDAI_CONFIG", "REDIS_URL")}
        os.environ["TONGDAI_CONFIG"] = str(cfg_path)
        os.environ["REDIS_URL"] = self.url
        from tongdai.core.crypto import load_keyring
        from tongdai.core.hub import Hub, connect

        # Customer data is encrypted in the benchmark as in production: the children find the
        # same key file through TONGDAI_DATA_DIR (or the same TONGDAI_DATA_KEYS from the env).
        keyring = load_keyring(self.dir / "redis", create=True)
        self.hub = Hub(config, connect(self.url), keyring)
        log(f"embedded Redis in {self.server.data_dir} (append-only file, appendfsync "
            f"{self.appendfsync})")

    @property
    def redis(self) -> redis.Redis:
        return self.hub.redis

    # -- children ------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], stdout: Path | None = None,
              env: dict[str, str] | None = None) -> Child:
        """Start a child in its own session; its output goes to a log file (stdout to
        ``stdout`` when given); ``env`` replaces the children's environment (another config)."""
        logfile = self.dir / f"{name}.log"
        with open(logfile, "ab") as err, open(stdout or logfile, "ab") as out:
            proc = subprocess.Popen(args, cwd=REPO, env=env or self.env, stdout=out,
                                    stderr=err if stdout else subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, logfile)
        self.children.append(child)
        return child

    def python(self, name: str, *args: str, stdout: Path | None = None,
               env: dict[str, str] | None = None) -> Child:
        return self.spawn(name, [sys.executable, *args], stdout=stdout, env=env)

    def run_json(self, name: str, args: list[str], timeout: float) -> dict:
        """Run a Python child to completion and return the JSON line it printed."""
        import orjson

        out = self.dir / f"{name}.out"
        out.unlink(missing_ok=True)
        child = self.python(name, *args, stdout=out)
        try:
            child.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} did not finish within {timeout:.0f}s") from None
        finally:
            self.stop(child)
        lines = out.read_text().strip().splitlines()
        if child.proc.returncode != 0 or not lines:
            raise RuntimeError(f"{name} failed ({child.proc.returncode}): {child.tail()}")
        return orjson.loads(lines[-1])

    def stop(self, *children: Child) -> None:
        for c in children:
            c.stop()
            if c in self.children:
                self.children.remove(c)

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Empty the database and compact the append-only file (no rewrite during a run)."""
        r = self.redis
        r.flushall()
        try:
            r.bgrewriteaof()
        except redis.ResponseError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = r.info("persistence")
            if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                    or info.get("rdb_bgsave_in_progress")):
                break
            time.sleep(0.05)
        from tongdai.core.pipeline import rawlog

        rawlog.ensure_groups(self.hub)

    def close(self) -> None:
        for c in reversed(self.children):
            try:
                c.stop()
            except Exception as exc:  # noqa: BLE001 — keep stopping the others
                log(f"stopping {c.name}: {exc}")
        self.children.clear()
        if self.server is not None:
            try:
                self.server.stop()
            except Exception as exc:  # noqa: BLE001 — killed just below
                log(f"stopping Redis: {exc}")
            proc = self.server.proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self.server = None
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}
        shutil.rmtree(self.dir, ignore_errors=True)
