"""RQ jobs. Each one is a few lines around a ``core`` function.

The Hub is built once per worker process (before RQ forks its work horses) and reused.
"""

from __future__ import annotations

import logging
import time

from core import ingest, outbound, rawlog
from core.hub import Hub

log = logging.getLogger(__name__)
_hub: Hub | None = None


def hub() -> Hub:
    global _hub
    if _hub is None:
        _hub = Hub.from_env()
    return _hub


def set_hub(h: Hub) -> None:
    """Use an already built Hub (worker start-up, tests, the benchmark)."""
    global _hub
    _hub = h


def drain(shard: int) -> dict:
    """Process a shard's raw events in batches until it is empty or the time budget is spent."""
    h = hub()
    cfg = h.config.hub.ingest
    consumer = rawlog.consumer_name()
    deadline = time.monotonic() + cfg.drain_budget
    totals = ingest.IngestResult()
    batch = rawlog.claim_stale(h, shard, consumer, cfg.batch_size)
    while True:
        if not batch.events:
            batch = rawlog.read(h, shard, consumer, cfg.batch_size)
        if not batch.events:
            # Let go of the shard, then look once more: an event appended before we let go
            # found the flag taken and enqueued nothing, so it is ours to process.
            rawlog.release_flag(h, shard)
            batch = rawlog.read(h, shard, consumer, cfg.batch_size)
            if not batch.events:
                break
            if not rawlog.take_flag(h, shard):
                _run(h, batch, totals)  # another drain job owns the shard from here on
                break
        _run(h, batch, totals)
        batch = rawlog.Batch(shard, [])
        if time.monotonic() > deadline:
            rawlog.enqueue_drain(h, shard)  # hand over, keeping the flag
            break
        rawlog.refresh_flag(h, shard)
    return {"stored": totals.stored, "duplicates": totals.duplicates,
            "updated": totals.updated, "dead": totals.dead}


def _run(h: Hub, batch: rawlog.Batch, totals: ingest.IngestResult) -> None:
    r = ingest.process(h, batch.events)
    rawlog.ack(h, batch.shard, [e.id for e in batch.events if e.id])
    totals.stored += r.stored
    totals.duplicates += r.duplicates
    totals.updated += r.updated
    totals.dead += r.dead


def send(conv_id: str, message_id: str, attempt: int = 1) -> str:
    """Send one agent reply through its channel's adapter."""
    return outbound.deliver(hub(), conv_id, message_id, attempt)
