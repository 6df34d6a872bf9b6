"""``tongdai imap``: one poller thread per email channel with ``inbound.imap``.

Each mail goes to the raw log before the poller marks it processed on the server (see
``adapters/email/imap.py``); the folder's resume point lives in Redis, so a restarted process
(or another host taking over) carries on where the last one stopped.
"""

from __future__ import annotations

import logging
import signal
import threading

from tongdai.adapters.email.imap import ImapPoller, ImapSettings
from tongdai.core.hub import Hub
from tongdai.core.pipeline import mail

log = logging.getLogger(__name__)


def channels(hub: Hub) -> dict[str, ImapSettings]:
    """The email channels that read an IMAP folder, with their folder's settings."""
    return {cid: a.settings.inbound.imap for cid, a in hub.adapters.items()
            if a.name == "email" and a.settings.inbound.imap is not None}


def pollers(hub: Hub) -> list[ImapPoller]:
    """A poller for every email channel that reads an IMAP folder."""
    out = []
    for cid, imap in channels(hub).items():

        def deliver(mime: bytes, _cid: str = cid) -> None:
            mail.store_raw_mail(hub, _cid, mime, "imap")

        out.append(ImapPoller(imap, deliver, mail.RedisUidCursor(hub, cid), label=cid))
    return out


def serve(hub: Hub) -> None:
    """Run every poller until SIGTERM / SIGINT. Run one such process per deployment: two
    would fetch the same mail (harmless, deduplicated by Message-ID, but wasted)."""
    workers = pollers(hub)
    if not workers:
        raise SystemExit("no email channel has inbound.imap in the configuration")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=p.run, args=(stop,), name=f"imap-{p.label}", daemon=True)
               for p in workers]
    for t in threads:
        t.start()
    hub.watch.start("imap")  # the folders polled need a restart (adapter.restart_settings)
    while not stop.wait(max(0.5, hub.watch.check_s)):
        hub.watch.poll()
    hub.watch.forget()
    for t in threads:
        t.join(timeout=10)
    for p in workers:
        p.close()
