"""One RQ worker process in burst mode, for the throughput comparison.

``python -m tongdai.benchmarks.workerproc ingest``   the hub's worker (``tongdai.worker.main.run_worker``)
``python -m tongdai.benchmarks.workerproc rq QUEUE`` a plain RQ ``Worker`` on QUEUE (the baseline)

The hub's worker is the production one (``rq.Worker``, a forked work horse per job: the ingest
loop is one long job, so the fork is paid once). The baseline is RQ at its fastest,
``rq.SimpleWorker`` (no fork: ~300 no-op jobs/s here, against ~47 for the forking ``Worker``),
so the ratio is not flattered by RQ's fork cost. Both log at WARNING, with a scheduler. Each writes ``bench:t0`` (wall clock, just before
``work()``, after imports and connecting) and ``bench:t1`` (when ``work()`` returns) to Redis,
so interpreter start-up is outside both measurements.
"""

from __future__ import annotations

import os
import sys
import time

import redis


def main() -> None:
    mode = sys.argv[1]
    r = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=60,
                             socket_connect_timeout=5)  # burst workers: no long blocking reads
    if mode == "ingest":
        from tongdai.core.hub import Hub
        from tongdai.worker.main import run_worker

        hub = Hub.from_env()
        r.set("bench:t0", repr(time.time()))
        run_worker(hub, burst=True)
    elif mode == "rq":
        from rq import Queue, SimpleWorker

        class Baseline(SimpleWorker):
            """Without the command channel: redis-py 8.2's pub/sub thread can make a burst
            end 60 s late (tests/helpers.py), which read as ~10 jobs/s and a ratio of 300."""

            def subscribe(self) -> None:
                self.pubsub_thread = None

            def unsubscribe(self) -> None:
                pass

        q = Queue(sys.argv[2], connection=r)
        w = Baseline([q], connection=r)
        r.set("bench:t0", repr(time.time()))
        w.work(burst=True, logging_level="WARNING", with_scheduler=True)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    r.set("bench:t1", repr(time.time()))


if __name__ == "__main__":
    main()
