"""``tongdai reactor``: runs every registered reactor (core/feed.py) on the change feed.

One thread per reactor, each blocking on its own consumer group, so a slow one (an integrator's
webhook, the Telegram staff group) never delays another. Several reactor processes may run:
they share each group's work, and a dead process's unacknowledged events are claimed by the
others after ``CLAIM_IDLE_MS``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed

log = logging.getLogger(__name__)
CLAIM_IDLE_MS = 30_000


def _loop(hub: Hub, name: str, handler: feed.Handler, stop: threading.Event) -> None:
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    feed.ensure_group(hub, name)
    while not stop.is_set():
        try:
            feed.run_once(hub, name, handler, consumer, block_ms=1000,
                          claim_idle_ms=CLAIM_IDLE_MS)
        except Exception:  # a failed batch stays pending and is retried after CLAIM_IDLE_MS
            log.exception("reactor %s failed a batch; it will be retried", name)
            stop.wait(2.0)


def run_reactors(hub: Hub, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    reactors = feed.load_reactors()
    threads = [threading.Thread(target=_loop, args=(hub, n, fn, stop), name=f"reactor-{n}",
                                daemon=True) for n, fn in reactors.items()]
    for t in threads:
        t.start()
    log.info("reactors running: %s", ", ".join(reactors) or "(none)")
    hub.watch.start("reactor")
    while not stop.is_set():
        time.sleep(0.5)
        hub.watch.poll()  # each reactor's next batch runs an applied edit
    for t in threads:
        t.join(timeout=5)
    hub.watch.forget()
