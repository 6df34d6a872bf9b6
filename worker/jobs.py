"""RQ jobs. Each one is a few lines around a ``core`` function.

The Hub is built once per worker process (before RQ forks its work horses) and reused.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from tongdai.core.hub import Hub
from tongdai.core.pipeline import ingest, outbound, rawlog

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


# Set when the process is asked to stop (SIGTERM): the ingest loop ends after the batch in
# hand instead of running out its time box (up to 10 s of a deploy or a Ctrl-C of `tongdai up`).
stopping = threading.Event()


def _stop_on_sigterm():
    """While an ingest loop runs: SIGTERM sets ``stopping``, then does what it did before (a
    forked horse's default, which would kill it mid-batch, is not called: the worker that
    forked it stops once the loop returns). Returns the handler to put back."""
    if threading.current_thread() is not threading.main_thread():
        return None
    before = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        stopping.set()
        if callable(before):
            before(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
    return before


def ingest_loop() -> dict:
    """Take an ingest slot and process raw events as they arrive, for ``loop_time_box`` s.

    Blocks on every shard at once, so an event is picked up within milliseconds; then hands
    over to a fresh job (RQ stays in charge: timeouts, failures, worker restarts). A SIGTERM
    (the worker stopping: ``tongdai.worker.main`` passes it on) ends it after the batch in hand.
    """
    before = _stop_on_sigterm()
    try:
        return _ingest_loop()
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def _ingest_loop() -> dict:
    h = hub()
    cfg = h.config.hub.ingest
    owner = f"{rawlog.consumer_name()}:{time.monotonic_ns()}"
    slot = rawlog.take_slot(h, owner)
    if slot is None:
        return {"slot": None}  # every slot is served: this job was one too many
    consumer = f"{rawlog.consumer_name()}:{slot}"
    totals = ingest.IngestResult()
    deadline = time.monotonic() + cfg.loop_time_box
    next_claim = 0.0
    try:
        while time.monotonic() < deadline and not stopping.is_set():
            rawlog.keep_slot(h, slot, owner)
            if time.monotonic() >= next_claim:  # batches a dead loop read but never acked
                for s in range(h.shards):
                    _run(h, rawlog.claim_stale(h, s, consumer, cfg.batch_size), totals)
                next_claim = time.monotonic() + min(cfg.claim_idle, 5.0)
            batches = rawlog.read(h, consumer, cfg.batch_size, block_ms=rawlog.BLOCK_MS)
            if h.watch.poll() == "applied":  # between batches: what was just read runs the edit
                cfg = h.config.hub.ingest
            for batch in batches:
                _run(h, batch, totals)
        rawlog.enqueue_ingest_loops(h, 1)  # the successor, before letting go of the slot
    finally:
        rawlog.free_slot(h, slot, owner)
    return {"slot": slot, "stored": totals.stored, "duplicates": totals.duplicates,
            "updated": totals.updated, "dead": totals.dead}


def ingest_pending(h: Hub) -> ingest.IngestResult:
    """Process everything waiting now, without blocking (replays, tests, one-off runs)."""
    consumer = f"{rawlog.consumer_name()}:once"
    totals = ingest.IngestResult()
    batch_size = h.config.hub.ingest.batch_size
    for s in range(h.shards):
        _run(h, rawlog.claim_stale(h, s, consumer, batch_size), totals)
    while batches := rawlog.read(h, consumer, batch_size):
        for batch in batches:
            _run(h, batch, totals)
    return totals


def _run(h: Hub, batch: rawlog.Batch, totals: ingest.IngestResult) -> None:
    if not batch.events:
        return
    r = ingest.process(h, batch.events)
    rawlog.ack(h, batch.shard, [e.id for e in batch.events if e.id])
    totals.stored += r.stored
    totals.duplicates += r.duplicates
    totals.updated += r.updated
    totals.dead += r.dead


def send(conv_id: str, message_id: str, attempt: int = 1, flags: str = "") -> str:
    """Send one reply through its channel's adapter (``flags``: ``send_schedule.Waiting``)."""
    return outbound.deliver(hub(), conv_id, message_id, attempt, flags)


def fetch_profile(channel_id: str, external_user_id: str, customer_id: str) -> str:
    """Ask the platform for a new customer's name and picture; cache them on the customer."""
    h = hub()
    profile = h.adapter(channel_id).fetch_profile(external_user_id)
    key = h.keys.customer(customer_id)
    fields = {"profile_at": int(time.time())}
    if profile and profile.get("picture"):
        fields["picture"] = profile["picture"]
    h.redis.hset(key, mapping=fields)
    if profile and profile.get("name"):  # a name an agent typed wins
        subject = h.subjects.key_for(f"{channel_id}|{external_user_id}")
        h.redis.hsetnx(key, "name", h.keyring.encrypt_text(profile["name"], b"name", subject))
    return "fetched" if profile else "no profile"


def acknowledge(channel_id: str, token: str) -> str:
    """Answer an event the platform wants acknowledged (a pressed Telegram button)."""
    hub().adapter(channel_id).acknowledge(token)
    return "acknowledged"


def deliver_hook(delivery_id: str) -> str:
    """One attempt at an outgoing webhook delivery (core/workspace/hookdelivery.py; the zset
    keeps the schedule, so a duplicate or late job does nothing)."""
    from tongdai.core.workspace import hookdelivery

    return hookdelivery.attempt(hub(), delivery_id)


def fetch_files(channel_id: str, conv_id: str, message_id: str) -> str:
    """Fetch the files of a customer's message from the platform into the blob store
    (core/pipeline/files.py); a 429/5xx raises and RQ tries again later."""
    from tongdai.core.pipeline import files

    return files.fetch(hub(), channel_id, conv_id, message_id)


def staff_reply_files(*args) -> str:
    """A staff-group reply with photos or files (core/workspace/staffgroup.py)."""
    from tongdai.core.workspace import staffgroup

    return staffgroup.reply_with_files(hub(), *args)
