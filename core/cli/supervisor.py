"""What keeps `tongdai up` running: a small process manager for its children and the
embedded Redis.

A child that exits is started again after a back-off that doubles with each exit in a row
(0.5 s … 30 s) and resets once the child has run ``HEALTHY_S`` seconds: a child that keeps
failing is retried slowly and loudly, never given up on, and six short Redis restarts spread
over an afternoon no longer add up to a stopped hub. The embedded Redis is supervised the same
way (it recovers from its append-only file). Nothing here stops the hub but Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

# Tunable from the environment (tests shorten them; an operator rarely needs to).
HEALTHY_S = float(os.environ.get("TONGDAI_UP_HEALTHY_S", "60"))
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = float(os.environ.get("TONGDAI_UP_MAX_BACKOFF_S", "30"))


def backoff_s(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` exits in a row."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, failures - 1))


@dataclass
class Child:
    """One supervised process: ``start()`` returns a running handle with ``poll()``."""

    name: str
    start: Callable[[], subprocess.Popen]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each after less than HEALTHY_S of running
    next_start: float = 0.0
    restarts: int = field(default=0)

    def step(self, now: float, say: Callable[[str], None]) -> None:
        """Start the child when it is due; notice when it has exited."""
        if self.proc is None:
            if now >= self.next_start:
                try:
                    self.proc, self.started_at = self.start(), now
                except Exception as exc:  # noqa: BLE001  (said, then retried after a back-off)
                    self._failed(now, 0.0, f"could not start ({exc})", say)
            return
        code = self.proc.poll()
        if code is None:
            if self.failures and now - self.started_at >= HEALTHY_S:
                self.failures = 0  # healthy again: the next exit starts a fresh count
            return
        self.proc = None
        ran = now - self.started_at
        self._failed(now, ran, f"exited ({code}) after {ran:.0f} s", say)

    def _failed(self, now: float, ran_s: float, what: str, say: Callable[[str], None]) -> None:
        if ran_s >= HEALTHY_S:
            self.failures = 0
        self.failures += 1
        self.restarts += 1
        delay = backoff_s(self.failures)
        self.next_start = now + delay
        say(f"{self.name} {what}; restarting in {delay:.1f} s"
            + (f" ({self.failures} exits in a row)" if self.failures > 1 else ""))


class DataDirLock:
    """One `tongdai up` per data directory: a second one would attach to the first one's
    Redis and run every process twice. An advisory lock the kernel drops when we die."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "tongdai-up.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise click.ClickException(
                f"another `tongdai up` (pid {other}) is running on {self.path.parent}: stop it "
                "first, or give this one its own --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
