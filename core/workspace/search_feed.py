"""Keeping the search index current: a reactor on the change feed, a rebuild, erasure.

The ``search`` reactor reads ``message.created`` / ``message.updated`` (the message, decrypted,
folded, upserted; its conversation's channels recorded) and ``customer.merged`` /
``customer.split`` / ``customer.erased`` (the customers' rows again, or gone). Ingest does not
wait for it: a message is searchable once the reactor has read it (usually well under a
second). Each node runs its own reactor group (``search@<TONGDAI_SEARCH_NODE>`` when set) into
its own file, so every web node has a full index. An index that was never built (a new node,
an upgrade, a deleted file), or whose node was away longer than the feed holds (its last
entry read is older than the feed's oldest), rebuilds itself from Redis on the reactor's next
batch; ``tongdai search reindex`` on demand. An index built before conversations' channels
were kept reads their current channels on the next batch.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import orjson

from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.workspace import search_index
from tongdai.core.workspace.search_index import SearchIndex, body

BATCH = 200
INDEXED_KINDS = ("in", "out")  # customers' and agents' messages; not notes or system lines


def reactor_name() -> str:
    node = os.environ.get("TONGDAI_SEARCH_NODE", "").strip()
    return f"search@{node}" if node else "search"


def _regions(hub: Hub) -> tuple[str, ...]:
    return tuple(hub.config.hub.identity.regions)


def message_rows(hub: Hub, conv: str, blobs: Iterable[tuple[str, bytes]],
                 channels: set[tuple[str, str]] | None = None
                 ) -> list[tuple[str, str, int, str]]:
    """(conversation, message id, time ms, body) for the index, from stored message blobs;
    each message's channel (whatever its kind or text) added to ``channels``."""
    ring, regions = hub.keyring, _regions(hub)
    out = []
    for mid, blob in blobs:
        d = orjson.loads(blob)
        if channels is not None and isinstance(d.get("c"), str) and d["c"]:
            channels.add((conv, d["c"]))
        if d.get("d") not in INDEXED_KINDS:
            continue
        parts = []
        for field, purpose in (("sj", b"subject"), ("x", b"text")):
            v = d.get(field)
            if isinstance(v, str) and v:
                try:
                    parts.append(ring.decrypt_text(v, purpose) or "")
                except ValueError:  # sealed with a key no longer configured
                    continue
        text = " ".join(p for p in parts if p)
        if text:
            out.append((conv, mid, int(d.get("t") or d.get("r") or 0), body(text, regions)))
    return out


def _sealed(identifier: bytes) -> str:
    """The sealed value of a ``customer_identifiers`` field (``verified|source|ts|value``)."""
    return (identifier.decode().split("|", 3) + ["", "", ""])[3]


def customer_rows(hub: Hub, customer_ids: Iterable[str]) -> list[tuple[int, str]]:
    """(customer id, body): the name, identities' user ids and identifiers, folded; an empty
    body for a customer erased or merged away (the row goes). Three reads per customer, all
    in one round trip, and the customers' own keys in one more."""
    from tongdai.core.workspace.search import _prefetch

    k, ring, regions = hub.keys, hub.keyring, _regions(hub)
    ids = [c for c in sorted(set(customer_ids)) if c.isdigit()]
    if not ids:
        return []
    pipe = hub.redis.pipeline(transaction=False)
    for c in ids:
        pipe.hmget(k.customer(c), ["name", "erased", "merged_into"])
        pipe.hkeys(k.customer_identities(c))
        pipe.hvals(k.customer_identifiers(c))
    replies = pipe.execute()
    sealed = []
    for n in range(len(ids)):
        name = replies[3 * n][0]
        sealed += ([name.decode()] if name else []) + [
            _sealed(v) for v in replies[3 * n + 2]]
    _prefetch(hub, sealed)
    out = []
    for n, cid in enumerate(ids):
        (name, erased, merged), idents, idfs = replies[3 * n:3 * n + 3]
        if erased or merged or not (name or idents):
            out.append((int(cid), ""))
            continue
        try:
            words = [ring.decrypt_text(name, b"name") or ""] if name else []
            words += [i.decode().partition("|")[2] for i in idents]
            for v in idfs:
                value = ring.decrypt_text(_sealed(v), b"identifier") or ""
                words.append(value.lstrip("+"))
        except ValueError:  # sealed with a key no longer configured
            continue
        out.append((int(cid), body(" ".join(w for w in words if w), regions)))
    return out


def _customer_of(hub: Hub, convs: Iterable[str], channels: set[tuple[str, str]]) -> set[str]:
    """The conversations' customers; their current channels added to ``channels``."""
    pipe = hub.redis.pipeline(transaction=False)
    convs = list(convs)
    for c in convs:
        pipe.hmget(hub.keys.conversation(c), ["customer", "channel"])
    out = set()
    for c, (cust, ch) in zip(convs, pipe.execute()):
        if cust:
            out.add(cust.decode())
        if ch:
            channels.add((c, ch.decode()))
    return out


def on_events(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """The reactor: index what the events changed (idempotent upserts)."""
    index = search_index.open_index()
    last = index.get_state("feed")
    oldest = feed.oldest_id(hub)
    if index.get_state("built") is None or (last and oldest and _eid(oldest) > _eid(last)):
        # never built, or this node was away longer than the feed holds: from Redis (unless
        # another process of this node rebuilt it while this one waited)
        with _rebuilding(index):
            last = index.get_state("feed")
            if index.get_state("built") is None or (last and _eid(oldest or "0") > _eid(last)):
                _reindex(hub, index, None)
            index.set_state("feed", events[-1].id)
        return  # the rebuild read everything these events are about
    if index.get_state(search_index.CHANNELS) is None:  # built before it kept channels
        with _rebuilding(index):
            if index.get_state(search_index.CHANNELS) is None:
                _backfill_channels(hub, index)
    wanted: dict[str, set[str]] = {}
    customers: set[str] = set()
    forget_convs: list[str] = []
    forget_customers: list[int] = []
    split: set[str] = set()
    for e in events:
        d = e.data
        if e.type in ("message.created", "message.updated") and d.get("message_id"):
            wanted.setdefault(str(d["conversation_id"]), set()).add(str(d["message_id"]))
        elif e.type in ("customer.merged", "customer.split"):
            customers |= {str(d[k]) for k in ("customer_id", "merged_customer_id",
                                              "restored_customer_id") if d.get(k)}
            if e.type == "customer.split":  # it moves messages between their conversations
                split |= {str(d[k]) for k in ("customer_id", "restored_customer_id") if d.get(k)}
        elif e.type == "customer.erased":
            forget_convs += [str(c) for c in d.get("conversation_ids", ())]
            forget_customers += [int(c) for c in d.get("customer_ids", ()) if str(c).isdigit()]
    if forget_convs or forget_customers:
        index.forget(forget_convs, forget_customers, rewrite=True)
    if split:
        _afresh(hub, index, split, wanted)
    rows = []
    channels: set[tuple[str, str]] = set()
    if wanted:
        pipe = hub.redis.pipeline(transaction=False)
        for conv, mids in wanted.items():
            pipe.hmget(hub.keys.messages(conv), sorted(mids))
        for (conv, mids), blobs in zip(wanted.items(), pipe.execute()):
            rows += message_rows(hub, conv, [(m, b) for m, b in zip(sorted(mids), blobs) if b],
                                 channels)
        customers |= _customer_of(hub, wanted, channels)
    index.put_messages(rows, sorted(channels))  # (a match never without its channels)
    index.put_customers(customer_rows(hub, customers))
    index.set_state("feed", events[-1].id)


def _afresh(hub: Hub, index: SearchIndex, customers: set[str],
            wanted: dict[str, set[str]]) -> None:
    """The customers' conversations indexed afresh: a split moves the messages a customer
    wrote while merged back to their own conversation, and the old rows would still point
    to the conversation they left (a split is rare; a few conversations)."""
    pipe = hub.redis.pipeline(transaction=False)
    for c in sorted(customers):
        pipe.zrange(hub.keys.customer_conversations(c), 0, -1)
    convs = sorted({x.decode() for found in pipe.execute() for x in found})
    index.forget(convs, [])
    pipe = hub.redis.pipeline(transaction=False)
    for conv in convs:
        pipe.hkeys(hub.keys.messages(conv))
    for conv, mids in zip(convs, pipe.execute()):
        wanted.setdefault(conv, set()).update(m.decode() for m in mids)


def _eid(s: str) -> tuple[int, int]:
    a, _, b = s.partition("-")
    return int(a), int(b or 0)


feed.reactor(reactor_name())(on_events)


def reindex(hub: Hub, index: SearchIndex | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Rebuild the index from Redis: every conversation's messages and every customer.
    In place: searches made meanwhile find what is indexed so far. ``progress(done, total)``
    is called after each batch of conversations."""
    index = index or search_index.open_index()
    with _rebuilding(index):
        return _reindex(hub, index, progress)


@contextmanager
def _rebuilding(index: SearchIndex) -> Iterator[None]:
    """One rebuild of a file at a time (several reactor processes, or the CLI, on a node):
    the others wait for it to finish."""
    with open(str(index.path) + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _reindex(hub: Hub, index: SearchIndex, progress: Callable[[int, int], None] | None
             ) -> dict[str, int]:
    r, k = hub.redis, hub.keys
    index.clear()
    convs: list[str] = []
    for status in ("open", "pending", "resolved"):
        convs += [c.decode() for c in r.zrange(k.conversations_by_status(status), 0, -1)]
    convs = list(dict.fromkeys(convs))
    messages = 0
    customers: set[str] = set()
    for i in range(0, len(convs), BATCH):
        part = convs[i:i + BATCH]
        pipe = r.pipeline(transaction=False)
        for c in part:
            pipe.hgetall(k.messages(c))
            pipe.hmget(k.conversation(c), ["customer", "channel"])
        replies = pipe.execute()
        rows = []
        channels: set[tuple[str, str]] = set()
        for n, c in enumerate(part):
            blobs, (cust, ch) = replies[2 * n], replies[2 * n + 1]
            rows += message_rows(hub, c, [(m.decode(), b) for m, b in blobs.items()], channels)
            if cust:
                customers.add(cust.decode())
            if ch:
                channels.add((c, ch.decode()))
        index.put_messages(rows, sorted(channels))
        messages += len(rows)
        if progress:
            progress(min(i + BATCH, len(convs)), len(convs))
    cust = customer_rows(hub, customers)
    for i in range(0, len(cust), 1000):
        index.put_customers(cust[i:i + 1000])
    index.set_state(search_index.CHANNELS, "1")
    index.set_state("built", str(messages))
    return {"conversations": len(convs), "messages": messages, "customers": len(customers)}


def _backfill_channels(hub: Hub, index: SearchIndex) -> None:
    """Every conversation's current channel, for an index built before it kept them (the
    first batch after an upgrade: about a second per 100,000 conversations, no rebuild). The
    current one is all a search needs; this reactor records every change from here on."""
    r, k = hub.redis, hub.keys
    convs: list[str] = []
    for status in ("open", "pending", "resolved"):
        convs += [c.decode() for c in r.zrange(k.conversations_by_status(status), 0, -1)]
    for i in range(0, len(convs), 1000):
        part = convs[i:i + 1000]
        pipe = r.pipeline(transaction=False)
        for c in part:
            pipe.hget(k.conversation(c), "channel")
        index.put_channels([(c, ch.decode()) for c, ch in zip(part, pipe.execute()) if ch])
    index.set_state(search_index.CHANNELS, "1")


def forget(customers: list[str], conversations: list[str]) -> None:
    """Erasure: this node's index drops the customers' rows now; the feed's
    ``customer.erased`` (published by the caller) tells the other nodes'."""
    search_index.open_index().forget(conversations, [int(c) for c in customers if c.isdigit()])
