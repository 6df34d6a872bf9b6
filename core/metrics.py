"""Prometheus counters of what happens in a process, shared by every process of a host.

Events that happen in one process — a webhook accepted or refused, messages stored by an
ingest loop, a send's outcome, a console's live stream — are counted here with
prometheus-client in multi-process mode: each process (uvicorn workers, RQ workers and the work
horses they fork, the scheduler) writes its own small memory-mapped file in one directory per
host, and ``/metrics`` adds them up (``webhooks/metrics.py``). What Redis already knows (queue
depths, lag, dead letters, SLA reports) is read from Redis at scrape time instead, never
counted twice.

The directory is ``PROMETHEUS_MULTIPROC_DIR`` when set, else ``<data dir>/metrics``, chosen on
a process's first count and inherited by the processes it starts. A process that exits leaves
its file; :func:`compact` folds dead processes' counters into one archive file and removes
their live gauges (``mark_process_dead``), so the directory holds a file per live process,
not one per work horse ever forked (an ingest worker forks one every ``loop_time_box``).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import Counter, Gauge, values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)
ENV = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVE = "archive"  # the "pid" part of the files holding dead processes' counters
_LOCK_FILE = ".lock"
_dir: Path | None = None

WEBHOOKS_ACCEPTED = Counter(
    "tongdai_webhooks_accepted", "Webhook deliveries stored in the raw log (answered 200)",
    ["channel"], registry=None)
WEBHOOKS_REJECTED = Counter(
    "tongdai_webhooks_rejected", "Webhook deliveries refused, nothing stored: signature (401/"
    "403), malformed (400/408/413), unavailable (503: Redis away, disk full), unknown_channel "
    "(404)", ["channel", "reason"], registry=None)
MESSAGES_STORED = Counter(
    "tongdai_messages_stored", "Messages stored by ingest (new timeline entries, duplicates "
    "not counted)", ["channel"], registry=None)
DEAD_LETTERS = Counter(
    "tongdai_dead_letters_written", "Raw events ingest could not process, kept as dead letters",
    ["channel"], registry=None)
SENDS = Counter(
    "tongdai_sends", "Platform calls for a queued message: sent, retry (scheduled again), "
    "rate_limited (waits for a slot), failed and uncertain (final)", ["channel", "outcome"],
    registry=None)
_sse: Gauge | None = None  # made at the first stream, once multi-process mode is on


def sse_clients() -> Gauge:
    """The live-stream gauge. Not made at import: a metric without labels takes its value
    store when made, and before ``directory()`` that would be this process's memory only."""
    global _sse
    if _sse is None:
        _ready()
        _sse = Gauge("tongdai_sse_clients", "Consoles connected to the live event stream",
                     multiprocess_mode="livesum", registry=None)
    return _sse

_REASONS = {400: "malformed", 408: "malformed", 413: "malformed", 401: "signature",
            403: "signature", 404: "unknown_channel", 503: "unavailable"}


def directory() -> Path:
    """This host's metrics directory, set up (and multi-process mode on) at the first call."""
    global _dir
    if _dir is None:
        path = os.environ.get(ENV)
        if not path:
            from tongdai.core.hub import data_dir

            path = os.environ[ENV] = str((data_dir() / "metrics").resolve())
        Path(path).mkdir(parents=True, exist_ok=True)
        if not getattr(values.ValueClass, "_multiprocess", False):
            # The library picks its value class when first imported, from the variable; set
            # here, the hub needs no variable in its Procfile (nothing was counted before).
            values.ValueClass = values.MultiProcessValue()
        _dir = Path(path)
    return _dir


def _ready() -> None:
    if _dir is None:
        directory()


_children: dict[tuple, object] = {}  # (metric, labels) → its child: skips labels()' lock


def _child(metric, *labels: str):
    found = _children.get((metric, labels))
    if found is None:
        _ready()
        found = _children[(metric, labels)] = metric.labels(*labels)
    return found


def webhook(channel: str, status: int) -> None:
    """Count one webhook delivery by its answer: 200 accepted, else the reason it was refused.
    Channels are the configured ones, or "(unknown)": a label per stranger's URL never."""
    if status == 200:
        _child(WEBHOOKS_ACCEPTED, channel).inc()
    else:
        _child(WEBHOOKS_REJECTED, channel, _REASONS.get(status, "other")).inc()


def ingested(stored: Mapping[str, int], dead: Mapping[str, int]) -> None:
    """One ingest batch: messages stored and dead letters written, per channel."""
    for ch, n in stored.items():
        _child(MESSAGES_STORED, ch).inc(n)
    for ch, n in dead.items():
        _child(DEAD_LETTERS, ch).inc(n)


def send(channel: str, outcome: str) -> None:
    _child(SENDS, channel, outcome).inc()


def stream_opened() -> None:
    """A console's live stream opened (``stream_closed`` when it ends)."""
    sse_clients().inc()


def stream_closed() -> None:
    sse_clients().dec()


# -- the directory: reading it whole, and folding in what dead processes left ----------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One reader or compactor of the directory at a time (scrapes of several web workers):
    a scrape never sees a dead process's counts both in its file and in the archive."""
    with open(path / _LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(name: str) -> str:
    """The process part of a file name: counter_123.db, gauge_livesum_123.db."""
    return name[:-3].rsplit("_", 1)[-1]


def _fold(path: Path, pids: set[str]) -> None:
    """Add dead processes' counters (and histograms) to the archive files, then remove their
    files. The new archive is written aside and renamed over the old one."""
    by_type: dict[str, list[str]] = {}
    for f in glob.glob(str(path / "*.db")):
        name = os.path.basename(f)
        if _pid_of(name) in pids:
            by_type.setdefault(name.split("_", 1)[0], []).append(f)
    for typ, files in by_type.items():
        if typ == "gauge":  # a dead process's gauges mean nothing now (we use live modes)
            continue
        archive = path / f"{typ}_{ARCHIVE}.db"
        sources = [*files, str(archive)] if archive.exists() else files
        merged = MultiProcessCollector.merge(sources, accumulate=False)
        tmp = path / f"{typ}_{ARCHIVE}.db.tmp"
        tmp.unlink(missing_ok=True)
        out = MmapedDict(str(tmp))
        try:
            for metric in merged:
                for s in metric.samples:
                    key = json.dumps([metric.name, s.name, s.labels, metric.documentation],
                                     sort_keys=True)
                    out.write_value(key, s.value, 0.0)
        finally:
            out.close()
        os.replace(tmp, archive)
    for pid in pids:
        mark_process_dead(int(pid), str(path))  # the documented clean-up: live gauges
    for files in by_type.values():
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                os.remove(f)


def compact(pids: set[int] | None = None) -> int:
    """Fold the files of processes that are gone (``pids``, or every file whose process is
    not running) into the archive. Returns how many processes were folded."""
    try:
        path = directory()
        with _locked(path):
            return _compact(path, {str(p) for p in pids} if pids is not None else None)
    except OSError as exc:  # never stop a worker over its metrics; the next scrape folds
        log.warning("metrics: could not fold dead processes' files: %s", exc)
        return 0


def _compact(path: Path, pids: set[str] | None) -> int:
    if pids is None:
        seen = {_pid_of(os.path.basename(f)) for f in glob.glob(str(path / "*.db"))}
        pids = {p for p in seen if p.isdigit() and not _alive(int(p))}
    pids.discard(str(os.getpid()))
    if pids:
        _fold(path, pids)
    return len(pids)


class HostCollector:
    """Every process's counters on this host (one Prometheus collector): dead processes'
    files are folded first, then every file is read, under the directory's lock."""

    def collect(self):
        path = directory()
        with _locked(path):
            _compact(path, None)
            return list(MultiProcessCollector.merge(glob.glob(str(path / "*.db")),
                                                    accumulate=True))
