"""Worker processes: ``tongdai worker`` (RQ) and ``tongdai scheduler`` (janitor)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_WORKER_TTL

from tongdai.core import metrics
from tongdai.core.hub import Hub, with_socket_timeout
from tongdai.core.keys import (
    BACKGROUND_QUEUE,
    HOOKS_QUEUE,
    INGEST_QUEUE,
    LEGACY_OUTBOUND_QUEUE,
    REPLIES_QUEUE,
    SEND_LANES,
)
from tongdai.core.pipeline import feed, ingest, rawlog, send_schedule
from tongdai.worker import jobs

log = logging.getLogger(__name__)


# ``tongdai worker --queues`` names → the RQ queues, in the order a worker serves them.
QUEUES: dict[str, tuple[str, ...]] = {
    "ingest": (INGEST_QUEUE,),
    "replies": (REPLIES_QUEUE,),  # agents' replies, and nothing else
    "background": (BACKGROUND_QUEUE, LEGACY_OUTBOUND_QUEUE),  # profiles, acknowledgements
    "hooks": (HOOKS_QUEUE,),
    # the name before issue #12, so an old Procfile line keeps sending: replies first
    "outbound": (REPLIES_QUEUE, BACKGROUND_QUEUE, LEGACY_OUTBOUND_QUEUE),
}
SENDING = {REPLIES_QUEUE, BACKGROUND_QUEUE, LEGACY_OUTBOUND_QUEUE}


# Held while a sender runs a job in this process: the config watch thread never swaps the
# config under it.
_job_running = threading.Lock()

# RQ waits for a job with BLPOP for up to its worker TTL less 15 s (405 s): the worker's
# client has a socket timeout above that, chosen here (the hub's 30 s would cut the wait;
# redis-py 8's default is 5 s; RQ raises it only for connections its pool has not made yet).
RQ_SOCKET_TIMEOUT_S = DEFAULT_WORKER_TTL + 30


class _PromptCommands:
    """rq listens for commands (shutdown, kill-horse) on a pub/sub thread that reads with a 60 s
    timeout, and redis-py 8.2's ``PubSubWorkerThread.stop()`` waits for that read to end: a
    worker whose thread had just read the unsubscribe reply took a minute to stop (a deploy, a
    Ctrl-C of ``tongdai up``). Read in 1 s steps instead; a command still arrives at once."""

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler)


class WatchingWorker(_PromptCommands, Worker):
    """Forks a work horse per job. The parent looks at the config file before each fork
    (unthrottled: a stat), so a horse starts from the file's last valid version, and from the
    ``watch_between_jobs`` thread while a horse runs (what it swaps never reaches the horse,
    which looks between its own batches)."""

    def execute_job(self, job, queue):
        jobs.hub().watch.poll(force=True)
        self._running_ingest = job.func_name == rawlog.INGEST_JOB
        try:
            return super().execute_job(job, queue)
        finally:
            self._running_ingest = False
            # The horse has exited: its counters go into the host's archive file, so the
            # metrics directory does not gain a file per horse (core/metrics.py).
            if self._last_horse:
                metrics.compact({self._last_horse})

    def request_stop(self, signum, frame):
        """A warm stop waits for the job in hand: an ingest loop's horse is told too (it set a
        SIGTERM handler, ``jobs.ingest_loop``), so it ends after its batch, not its time box."""
        super().request_stop(signum, frame)
        if self._running_ingest and self._horse_pid:
            try:
                os.kill(self._horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    _running_ingest = False

    def fork_work_horse(self, job, queue):
        super().fork_work_horse(job, queue)
        self._last_horse = self._horse_pid

    _last_horse = 0


class WatchingSimpleWorker(_PromptCommands, SimpleWorker):
    """Runs jobs in-process: looks before each one, and between jobs from the thread."""

    def execute_job(self, job, queue):
        with _job_running:
            jobs.hub().watch.poll(force=True)
            return super().execute_job(job, queue)


def watch_between_jobs(hub: Hub, stop: threading.Event) -> None:
    """Look at the config file every ``check_s``, never under a job running in this process
    (core/config_watch.py): an idle sender runs, and reports, the file's version too."""
    while not stop.wait(max(0.2, hub.watch.check_s)):
        if _job_running.acquire(blocking=False):
            try:
                hub.watch.poll()
            finally:
                _job_running.release()


def run_worker(hub: Hub, queues: tuple[str, ...] = ("ingest",), burst: bool = False,
               with_scheduler: bool = True) -> None:
    """An RQ worker. Ingest workers each run one long ingest loop at a time, so replies get
    workers of their own (``queues=("replies",)``), and background platform calls others
    (``("background",)``): a reply never waits behind ingest or a profile fetch. A worker
    that sends also promotes the sends that wait (``send_schedule.run_promoter``)."""
    jobs.set_hub(hub)
    rawlog.ensure_groups(hub)
    if "ingest" in queues and not burst:
        rawlog.ensure_ingest_loops(hub)  # don't wait for the scheduler's first tick
    names = list(dict.fromkeys(name for q in queues for name in QUEUES[q]))
    stop = threading.Event()
    lanes = [lane for lane, name in SEND_LANES.items() if name in names]
    promoter = threading.Thread(target=send_schedule.run_promoter, args=(hub, stop, lanes),
                                name="promoter", daemon=True)
    if lanes and not burst:
        promoter.start()
    # Senders run their jobs in-process: a send is a short platform call, and a work horse
    # forked per job cost more than the call (~47 jobs/s against ~300 here) and dropped the
    # adapter's kept-alive HTTPS connection to the platform after every send.
    worker_class = WatchingSimpleWorker if set(names) <= SENDING else WatchingWorker
    if not burst:
        hub.watch.start(f"worker:{'+'.join(queues)}")
        threading.Thread(target=watch_between_jobs, args=(hub, stop), name="config-watch",
                         daemon=True).start()
    conn = with_socket_timeout(hub.redis, RQ_SOCKET_TIMEOUT_S)
    try:
        worker_class([Queue(name, connection=conn) for name in names],
                     connection=conn).work(
            burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
    finally:
        hub.watch.forget()
        stop.set()
        if promoter.is_alive():
            promoter.join(timeout=2)


def run_ticks(hub: Hub, stop: threading.Event, interval: float = 1.0) -> None:
    """Run the registered periodic tasks (``@feed.tick``) when due, until ``stop`` is set."""
    due: dict[str, float] = {}
    feed.load_reactors()
    while not stop.is_set():
        for name, (fn, every) in feed.TICKS.items():
            if time.monotonic() >= due.get(name, 0.0):
                due[name] = time.monotonic() + every
                try:
                    fn(hub)
                except Exception:
                    log.exception("periodic task %s failed", name)
        stop.wait(interval)


def run_scheduler(hub: Hub, interval: float = 1.0, trim_every: float = 60.0) -> None:
    """Keep the ingest slots filled every ``interval`` s; trim the raw log by retention. The
    workspace's periodic tasks (snoozes, presence, SLA breaches, digests, webhook retries) run
    in a thread of their own, so a slow one (a digest mail) never delays refilling a slot."""
    rawlog.ensure_groups(hub)
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ticks = threading.Thread(target=run_ticks, args=(hub, stop), name="ticks", daemon=True)
    ticks.start()
    hub.watch.start("scheduler")
    last_trim = last_ack = 0.0
    ack_every = 10.0
    while not stop.is_set():
        hub.watch.poll()  # per tick: the next one (and the ticks thread) run an applied edit
        try:
            started = rawlog.ensure_ingest_loops(hub)
            if started:
                log.info("enqueued %d ingest loop(s) for empty slots", started)
            if time.monotonic() - last_ack > ack_every:  # what a crashed worker left
                ingest.acknowledge_due(hub)
                last_ack = time.monotonic()
            if time.monotonic() - last_trim > trim_every:
                removed = rawlog.trim(hub)
                if removed:
                    log.info("trimmed %d raw events past retention", removed)
                last_trim = time.monotonic()
        except Exception:  # keep the janitor alive across a Redis restart
            log.exception("scheduler tick failed")
        stop.wait(interval)
    ticks.join(timeout=5)
    hub.watch.forget()
