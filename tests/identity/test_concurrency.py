"""Two workers, the same new people, at the same moment: one customer each, never two.

Two real processes start together (a barrier on a Redis list) and ingest, in parallel, each
person's Telegram contact and Zalo form with the same verified number, plus two Telegram
messages of the same brand-new user. Redis runs each event's script atomically, so whichever
comes second finds the first one's customer.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.identity.people import customer_of, tg_contact, tg_text, zalo_submit
from tongdai.core.models import RawEvent

PEOPLE = 60
WORKER = """
import os, sys, orjson
import tongdai.core.workspace  # the process entry point loads the workspace (its interceptors)
from tongdai.core.hub import Hub
from tongdai.core.pipeline import ingest
from tongdai.core.models import RawEvent
hub = Hub.from_env()
events = [RawEvent(e["c"], e["b"].encode("latin-1"), {}, e["t"])
          for e in orjson.loads(open(sys.argv[1], "rb").read())]
hub.redis.rpush("test:ready", 1)
hub.redis.blpop(["test:go"], 30)
for e in events:  # one by one: the most interleaving
    assert ingest.process(hub, [e]).dead == 0
"""


def _dump(path, events: list[RawEvent]) -> None:
    path.write_bytes(orjson.dumps([{"c": e.channel_id, "b": e.body.decode("latin-1"),
                                    "t": e.received_ts_ms} for e in events]))


def test_parallel_workers_make_one_customer_per_person(hub, redis_url, config_file, tmp_path):
    left, right = [], []
    for i in range(PEOPLE):
        phone = f"0912{i:06d}"
        left += [tg_contact(20_000 + i, phone), tg_text(30_000 + i, "hello")]
        right += [zalo_submit(f"zc{i}", phone), tg_text(30_000 + i, "hello again")]
    _dump(tmp_path / "a.json", left)
    _dump(tmp_path / "b.json", right)
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f)], env=env)
             for f in ("a.json", "b.json")]
    for _ in procs:
        assert hub.redis.blpop(["test:ready"], 30) is not None
    hub.redis.rpush("test:go", 1, 1)
    assert [p.wait(120) for p in procs] == [0, 0]

    for i in range(PEOPLE):
        tg = customer_of(hub, "tg-test", str(20_000 + i))
        assert tg is not None and tg == customer_of(hub, "zalo-test", f"zc{i}")
    # every brand-new Telegram user written to by both workers at once: one customer
    news = {customer_of(hub, "tg-test", str(30_000 + i)) for i in range(PEOPLE)}
    assert len(news) == PEOPLE
    live = [c for c in range(1, int(hub.redis.get(hub.keys.seq("customer"))) + 1)
            if not hub.redis.hexists(hub.keys.customer(str(c)), "merged_into")]
    assert len(live) == 2 * PEOPLE
