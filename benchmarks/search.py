"""The ``search`` section of ``tongdai bench``: the inbox's first page and search, as history grows.

The data set is built directly, not through ingest (a million messages through the webhook
and the workers would take most of an hour): conversations, customers, timelines and message
blobs are written into Redis with pipelines in the form ingest leaves them (texts in clear:
``encrypt_message_text`` off, the default), and into the search index with the index's own
folding (core/workspace/search_index.py: the rows the search reactor would write). Texts are
Vietnamese and English support messages (benchmarks/corpus.py) and one in ten Chinese, in
either script; each conversation has a customer with a name and a phone.

Measured on two hubs side by side in one Redis (two key prefixes, two index files) — 1,000
conversations with 10,000 messages, and 100,000 with 1,000,000 (``--quick``: 100 / 1,000 and
1,000 / 10,000), queried in turns round after round so load from elsewhere falls on both — through
``core/workspace/inbox.page`` as the API calls it, for an admin and for an agent who sees
one queue in six:

* ``inbox_first_page_ms``   p95 of the first page (50, latest activity; target <= 50 ms)
* ``search_ms``             p95 of searches: common words, an order number, a phone in
                            another format, a name, two Chinese characters, and with filters
                            (target <= 200 ms)
* ``search_ratio`` / ``inbox_first_page_ratio``   the large hub's p95 ÷ the small one's
                            (target <= 2: flat as history grows)

The details give each search's median at both sizes (``median_ms``) and how many matching
conversations it checked in Redis and showed (``checked``).

The details add the index's size on disk, how fast it was filled, and the search reactor's
own rate (message.created events → rows) on this data.
"""

from __future__ import annotations

import os
import random
import time

import orjson

from tongdai.benchmarks import corpus
from tongdai.benchmarks.common import Params
from tongdai.benchmarks.env import BenchEnv, log

MSGS_PER_CONV = 10
ZH = ["我的订单还没有到，请帮我查一下", "退款什么时候到账", "無法登入帳號，請協助", "请问运费多少钱",
      "充值失敗了，錢已經扣了", "我想改收货地址"]
QUERIES = [{"q": "nap the"}, {"q": "hoan tien don"}, {"q": "refund for order"},
           {"q": "DH-4242", "status": "resolved"}, {"q": "0912 300 042", "status": "resolved"}, {"q": "nguyen lan"}, {"q": "退款"},
           {"q": "無法登入"}, {"q": "nap the", "channel": "ch-1"}, {"q": "dang nhap",
                                                                 "status": "resolved"}]
ROUNDS = 8


def _p95(ms: list[float]) -> float:
    return sorted(ms)[max(0, int(len(ms) * 0.95) - 1)] if ms else float("nan")


def populate(hub, index, start: int, stop: int, now_ms: int, regions: tuple[str, ...]) -> int:
    """Conversations ``start``..``stop`` (ids from 1), their customers and messages."""
    from tongdai.core.workspace.search_index import body

    rng = random.Random(start)
    k, r = hub.keys, hub.redis
    folded: dict[str, str] = {}  # texts repeat (templates): fold each once
    queues = ["general", "billing", "q-0", "q-1", "q-2", "q-3"]
    pipe = r.pipeline(transaction=False)
    rows, customers, channels, n = [], [], [], 0
    for c in range(start, stop):
        conv, cust = str(c), str(c)
        first, last = rng.choice(corpus._FIRST), rng.choice(corpus._LAST)
        name, phone = f"{last} {first}", f"+8491{c % 10_000_000:07d}"
        created = now_ms - (stop - c) * 600_000 - 86_400_000  # 10 min apart: years
        status = "resolved" if c % 4 else "open"
        channel = f"ch-{c % 5}"
        updated = created + MSGS_PER_CONV * 30_000
        pipe.hset(k.conversation(conv), mapping={
            "customer": cust, "channel": channel, "status": status,
            "queue": queues[c % len(queues)], "created": created, "updated": updated,
            "priority": 0})
        pipe.zadd(k.conversations_by_status(status), {conv: updated})
        pipe.hset(k.customer(cust), mapping={"name": name, "created": created, "conv": conv})
        pipe.zadd(k.customer_conversations(cust), {conv: updated})
        customers.append((c, body(f"{name} {c} {phone[1:]}", regions)))
        channels.append((conv, channel))
        blobs, times = {}, {}
        for m in range(MSGS_PER_CONV):
            ts = created + m * 30_000
            if c % 1000 == 42 and m == 0:
                text = f"Đơn DH{c // 1000 * 100 + 42} của mình, gọi 0912 300 042 nhé"
            else:
                text = rng.choice(ZH) if rng.random() < 0.1 else corpus.text(rng)
            inbound = m % 2 == 0
            mid = f"{c}-{m}"
            blobs[mid] = orjson.dumps({"d": "in" if inbound else "out",
                                       "a": "customer" if inbound else "agent", "c": channel,
                                       "t": ts, "r": ts, "k": "message", "x": text})
            times[mid] = ts
            b = folded.get(text)
            if b is None:
                b = folded[text] = body(text, regions)
            rows.append((conv, mid, ts, b))
        pipe.hset(k.messages(conv), mapping=blobs)
        pipe.zadd(k.timeline(conv), times)
        n += MSGS_PER_CONV
        if len(pipe) >= 2000:
            pipe.execute()
        if len(rows) >= 20_000:
            index.load_messages(rows)
            rows = []
    pipe.execute()
    index.load_messages(rows)
    index.put_customers(customers)
    index.put_channels(channels)
    return n


def _label(who: str, q: dict) -> str:
    return " ".join([who, q["q"], *(v for k, v in q.items() if k != "q")])


def _measure(sides: list, people: dict, now_ms: int, rounds: int,
             each: dict[str, dict[str, list[float]]] | None = None) -> dict:
    """Both hubs in turns, round after round, so a neighbour's CPU burst lands on both:
    {side: (first page ms list, search ms list)}; ``each`` gets {side: {search: ms list}}."""
    from tongdai.core.workspace import inbox

    out: dict[str, tuple[list[float], list[float]]] = {s[0]: ([], []) for s in sides}
    each = {} if each is None else each
    for _ in range(rounds):
        for name, hub, index_dir in sides:
            os.environ["TONGDAI_DATA_DIR"] = index_dir
            first, search = out[name]
            for who, p in people.items():
                t = time.perf_counter()
                inbox.page(hub, p, inbox.Filters(), None, 50, now=now_ms)
                first.append((time.perf_counter() - t) * 1000)
                for q in QUERIES:
                    t = time.perf_counter()
                    inbox.page(hub, p, inbox.Filters(**q), None, 50, now=now_ms)
                    search.append((time.perf_counter() - t) * 1000)
                    each.setdefault(name, {}).setdefault(_label(who, q), []).append(search[-1])
    return out


def _looked(sides: list, people: dict, now_ms: int) -> dict:
    """How many matching conversations each search checked against the filters and access
    (once, after the timing; counted around ``search.passing``) and how many it showed:
    {side: {"caller q [channel]": [checked, shown]}}."""
    from tongdai.core.workspace import inbox, search

    real = search.passing
    checked = [0]

    def counting(hub, ids, *a, **kw):
        checked[0] += len(ids)
        return real(hub, ids, *a, **kw)

    out: dict[str, dict[str, list[int]]] = {}
    search.passing = counting
    try:
        for name, hub, index_dir in sides:
            os.environ["TONGDAI_DATA_DIR"] = index_dir
            for who, p in people.items():
                for q in QUERIES:
                    checked[0] = 0
                    got = inbox.page(hub, p, inbox.Filters(**q), None, 50, now=now_ms)
                    label = _label(who, q)
                    out.setdefault(name, {})[label] = [checked[0], len(got.items)]
    finally:
        search.passing = real
    return out


def _reactor_rate(hub, convs: int) -> float:
    """The search reactor on 2,000 message.created events of stored messages: rows/s."""
    from tongdai.core.pipeline.feed import FeedEvent
    from tongdai.core.workspace import search_feed

    events = [FeedEvent(f"{i}-0", {"type": "message.created", "conversation_id": str(c),
                                   "message_id": f"{c}-{i % MSGS_PER_CONV}"})
              for i, c in enumerate(range(1, min(convs, 2000) + 1))]
    t = time.perf_counter()
    for i in range(0, len(events), 200):
        search_feed.on_events(hub, events[i:i + 200])
    return len(events) / (time.perf_counter() - t)


def _hub(env: BenchEnv, prefix: str):
    """The kpis section's hub (four teams, a queue each) under its own key prefix."""
    from tongdai.benchmarks.kpis import _teams_hub
    from tongdai.core.config import load_config
    from tongdai.core.hub import Hub

    base = _teams_hub(env)
    if prefix == base.keys.prefix:
        return base
    import yaml

    path = env.dir / "tongdai-kpis.yaml"
    cfg = yaml.safe_load(path.read_text("utf-8"))
    cfg.setdefault("redis", {})["prefix"] = prefix
    other = env.dir / f"tongdai-search-{prefix.strip(':')}.yaml"
    other.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), "utf-8")
    return Hub(load_config(str(other)), env.hub.redis, env.hub.keyring)


def bench_search(env: BenchEnv, p: Params) -> dict:
    from tongdai.benchmarks.kpis import TEAMS
    from tongdai.core.clock import now_ms
    from tongdai.core.workspace import search_index
    from tongdai.core.workspace.access import Principal

    env.reset()
    quick = p.ingest_n < 10_000
    small, large = (100, 1_000) if quick else (1_000, 100_000)
    rounds = 3 if quick else ROUNDS
    hubs = {"small": _hub(env, "tdsmall:"), "large": _hub(env, "td:")}
    dirs = {n: str(env.dir / f"search-{n}") for n in hubs}
    sizes = {"small": small, "large": large}
    old_dir = os.environ.get("TONGDAI_DATA_DIR")
    try:
        regions = tuple(hubs["large"].config.hub.identity.regions)
        now = now_ms()
        people = {"admin": Principal("bench-admin", "admin"),
                  "agent": Principal("bench-agent", "agent", frozenset({TEAMS[0]}))}
        log(f"  search: building {large:,} conversations / {large * MSGS_PER_CONV:,} "
            f"messages, and {small:,} / {small * MSGS_PER_CONV:,} beside them, directly in "
            "Redis and the index (not through ingest)")
        fill: dict[str, float] = {}
        for name, hub in hubs.items():
            os.environ["TONGDAI_DATA_DIR"] = dirs[name]
            index = search_index.open_index()
            index.clear()
            index.set_state("built", "bench")
            index.set_state(search_index.CHANNELS, "1")
            t = time.perf_counter()
            populate(hub, index, 1, sizes[name] + 1, now, regions)
            fill[name] = time.perf_counter() - t
        n = large * MSGS_PER_CONV
        each: dict[str, dict[str, list[float]]] = {}
        measured = _measure([(name, hubs[name], dirs[name]) for name in hubs], people, now,
                            rounds, each)
        looked = _looked([(name, hubs[name], dirs[name]) for name in hubs], people, now)
        os.environ["TONGDAI_DATA_DIR"] = dirs["large"]
        rate = _reactor_rate(hubs["large"], large)
        index = search_index.open_index()
        size = sum(f.stat().st_size for f in index.path.parent.glob(index.path.name + "*"))
    finally:
        if old_dir is None:
            os.environ.pop("TONGDAI_DATA_DIR", None)
        else:
            os.environ["TONGDAI_DATA_DIR"] = old_dir
    (first_s, search_s), (first_l, search_l) = measured["small"], measured["large"]
    res = {"inbox_first_page_ms": _p95(first_l), "search_ms": _p95(search_l),
           "inbox_first_page_ratio": _p95(first_l) / _p95(first_s),
           "search_ratio": _p95(search_l) / _p95(search_s)}
    log(f"  search: first page p95 {res['inbox_first_page_ms']:.1f} ms (x"
        f"{res['inbox_first_page_ratio']:.2f} of {small * MSGS_PER_CONV:,} messages), search "
        f"p95 {res['search_ms']:.1f} ms (x{res['search_ratio']:.2f}) at {n:,} messages; index "
        f"{size / 1e6:.0f} MB, built at {n / fill['large']:,.0f} messages/s; search reactor "
        f"{rate:,.0f} messages/s")
    return res | {"_search": {
        "conversations": large, "messages": n, "small_messages": small * MSGS_PER_CONV,
        "built": "directly (Redis pipelines + index), not through ingest",
        "small_first_page_p95_ms": _p95(first_s), "small_search_p95_ms": _p95(search_s),
        "search_p50_ms": sorted(search_l)[len(search_l) // 2], "search_max_ms": max(search_l),
        "index_mb": round(size / 1e6), "fill_msgs_per_s": round(n / fill["large"]),
        "fill_s": round(fill["large"], 1), "reactor_msgs_per_s": round(rate),
        "queries": len(QUERIES), "rounds": rounds,
        "checked": {k: [looked["small"][k], looked["large"][k]] for k in looked["large"]},
        "median_ms": {k: [round(sorted(each["small"][k])[len(each["small"][k]) // 2], 1),
                          round(sorted(each["large"][k])[len(each["large"][k]) // 2], 1)]
                      for k in each["large"]},
        "note": _note(looked, small, large)}}


def _note(looked: dict, small: int, large: int) -> str:
    """Why the search ratio is what it is: the search that checks the most conversations at
    the large size, against the same search at the small one."""
    worst = max(looked["large"], key=lambda k: looked["large"][k][0])
    (cs, ns), (cl, nl) = looked["small"][worst], looked["large"][worst]
    return (f"'{worst}' checks {cl:,} matching conversations to show {nl} at {large:,} "
            f"conversations, {cs:,} to show {ns} at {small:,}: at the small size the whole "
            "history holds fewer than a page, so it stops when the matches run out; at the "
            "large it reads until a page is full. A filter or access rule the index cannot "
            "apply (the index only proposes; Redis decides) costs about 1 / (the share that "
            "passes) candidates per result, until history runs out (docs/decisions.md, "
            "search over all history)")
