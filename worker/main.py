"""Worker processes: ``tongdai worker`` (RQ) and ``tongdai scheduler`` (janitor)."""

from __future__ import annotations

import logging
import signal
import time

from rq import Queue, Worker

from core import rawlog
from core.hub import Hub
from core.keys import INGEST_QUEUE, OUTBOUND_QUEUE
from worker import jobs

log = logging.getLogger(__name__)


def run_worker(hub: Hub, burst: bool = False, with_scheduler: bool = True) -> None:
    """An RQ worker on the ingest queue (first) and the outbound queue."""
    jobs.set_hub(hub)
    rawlog.ensure_groups(hub)
    queues = [Queue(INGEST_QUEUE, connection=hub.redis), Queue(OUTBOUND_QUEUE, connection=hub.redis)]
    Worker(queues, connection=hub.redis).work(
        burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")


def run_scheduler(hub: Hub, interval: float = 1.0, trim_every: float = 60.0) -> None:
    """Recover abandoned raw batches every ``interval`` s; trim the raw log by retention."""
    rawlog.ensure_groups(hub)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last_trim = 0.0
    while not stop:
        try:
            woken = rawlog.janitor(hub)
            if woken:
                log.warning("re-enqueued drain for shards %s (abandoned or lost)", woken)
            if time.monotonic() - last_trim > trim_every:
                removed = rawlog.trim(hub)
                if removed:
                    log.info("trimmed %d raw events past retention", removed)
                last_trim = time.monotonic()
        except Exception:  # keep the janitor alive across a Redis restart
            log.exception("scheduler tick failed")
        time.sleep(interval)
