"""The agent's inbox: filtered lists of the conversations an agent may see, unread counts,
search by customer name, identifier, conversation id or message text.

Unread: ``td:unread`` is a sorted set conversation → customer messages since an agent last
read or answered it. The ingest script adds one per inbound message (one ZINCRBY: both the
counter and the set of unread conversations, so queue badges never scan whole queues);
``mark_read`` and an agent's reply (``create_outbound.lua``) remove the conversation;
resolving it too.

Lists walk one index a chunk at a time (filters, rows and the walk:
``core/workspace/inbox_index.py``); search (``q``) decrypts and matches the most recent
conversations' names and texts (``core/workspace/search.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.crypto import TEXT_PREFIX
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation
from tongdai.core.pipeline import feed
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.inbox_index import (
    Filters,
    Row,
    _cursor,
    _decode_cursor,
    _load,
    _source,
    _walk,
    check,
    passing,
)
from tongdai.core.workspace.search import _names, _prefetch, _search

SCAN_BUDGET = 5000        # index entries one list request looks at, at most
PREVIEW = 140


@dataclass(slots=True)
class InboxPage:
    items: list[dict]
    next_cursor: str | None
    counts: dict[str, int]


# -- unread --------------------------------------------------------------------------------------
def mark_read(hub: Hub, conv_id: str, by: str) -> bool:
    """The conversation's messages are read (by ``by``): unread goes to 0 and
    ``conversation.read`` goes on the feed (so other consoles clear their badge). Returns
    whether anything was unread."""
    k = hub.keys
    if hub.redis.zscore(k.unread(), conv_id) is None:
        return False
    pipe = hub.redis.pipeline(transaction=True)
    pipe.zrem(k.unread(), conv_id)
    feed.publish(hub, {"type": "conversation.read", "conversation_id": conv_id, "by": by}, pipe)
    pipe.execute()
    return True


def unread_counts(hub: Hub, p: Principal) -> dict[str, int]:
    """Queue → open conversations with unread messages, for the queues ``p`` sees.

    Cost: one HMGET per conversation with unread messages (pipelined), whatever the queues'
    length: only those are in ``td:unread``."""
    visible = access.visible_queues(hub, p)
    queues = visible if visible is not None else set(hub.config.hub.routing.queues)
    counts = dict.fromkeys(sorted(queues), 0)
    members = hub.redis.zrange(hub.keys.unread(), 0, -1)
    for i in range(0, len(members), 1000):
        part = members[i:i + 1000]
        pipe = hub.redis.pipeline(transaction=False)
        for m in part:
            pipe.hmget(hub.keys.conversation(m.decode()), ["queue", "status"])
        for queue, status in pipe.execute():
            q = queue.decode() if queue else None
            if q in counts and status == b"open":
                counts[q] += 1
    return counts


# -- lists -------------------------------------------------------------------------------------
def page(hub: Hub, p: Principal, f: Filters, cursor: str | None, limit: int,
         now: int | None = None) -> InboxPage:
    """One page of the inbox for ``p``, with the unread counts of their queues."""
    now = now or now_ms()
    check(hub, p, f)
    after = _decode_cursor(cursor)
    if f.q and f.q.strip():
        rows, nxt = _search(hub, p, f, after, limit, now)
    else:
        rows, nxt = _list(hub, p, f, after, limit, now)
    return InboxPage(items(hub, rows, now), nxt, unread_counts(hub, p))


def _list(hub: Hub, p: Principal, f: Filters, after: tuple[float, str] | None, limit: int,
          now: int) -> tuple[list[Row], str | None]:
    key, desc, bound = _source(hub, f, now)
    visible = access.visible_queues(hub, p)
    out: list[tuple[str, float]] = []
    scanned = 0
    nxt: str | None = None
    # the first chunk is one page (and one more, to know whether more follow); each chunk is
    # filtered inside Redis (one round trip), only the page's rows are loaded
    for chunk in _walk(hub, key, after, desc, bound, first=limit + 1):
        ok = passing(hub, [m for m, _ in chunk], f, p, visible, now)
        for m, s in chunk:
            if len(out) == limit:  # full, and more follow
                nxt = _cursor(out[-1][1], out[-1][0])
                break
            scanned += 1
            if m in ok:
                out.append((m, s))
            if scanned >= SCAN_BUDGET and len(out) < limit:
                nxt = _cursor(s, m)
                break
        if nxt is not None:
            break
    rows = [r for r in _load(hub, out) if r is not None] if out else []
    return rows, nxt


# -- what a list item shows ----------------------------------------------------------------------
def _system_line(blob: bytes) -> bool:
    d = orjson.loads(blob)
    return d.get("d") == "internal" and d.get("k") == "system"


def _preview(d: dict) -> str:
    text = d.get("x")
    if text:
        return text[:PREVIEW]
    kinds = [a.get("kind", "file") for a in d.get("at", ())]
    if kinds:
        return "[" + ", ".join(kinds) + "]"
    return f"[{d.get('k', 'message')}]"


def items(hub: Hub, rows: list[Row], now: int | None = None) -> list[dict]:
    """The API's list items: the conversation, its customer's name, the latest message (a
    preview), unread count and SLA due time. Four round trips for a whole page."""
    if not rows:
        return []
    now = now or now_ms()
    k = hub.keys
    ids = [r.id for r in rows]
    pipe = hub.redis.pipeline(transaction=False)
    for r in rows:  # the latest: messages of one second tie, and ids sort as text there
        pipe.zrevrange(k.timeline(r.id), 0, 4, withscores=True)
    pipe.zmscore(k.unread(), ids)
    replies = pipe.execute()
    unread = replies[-1]
    tops = [sorted(top, key=lambda x: (x[1], len(x[0]), x[0]), reverse=True)
            for top in replies[:-1]]
    names = _names(hub, [r.h["customer"] for r in rows])
    pipe = hub.redis.pipeline(transaction=False)
    for r, top in zip(rows, tops):
        pipe.hmget(k.messages(r.id), [m for m, _ in top] or ["-"])
    last_ids, blobs = [], []
    for top, found in zip(tops, pipe.execute()):
        # the newest that is not a system line (a claim, a transfer: the console shows those
        # in the timeline, the preview is about the conversation with the customer)
        pick = next((i for i, b in enumerate(found) if b and not _system_line(b)), 0)
        last_ids.append([top[pick][0]] if top else [])
        blobs.append(found[pick] if top else None)
    sealed = [orjson.loads(b).get("x") or "" for b in blobs if b]
    _prefetch(hub, sealed)
    out = []
    for r, last, blob, n in zip(rows, last_ids, blobs, unread):
        item = Conversation.from_hash(r.id, r.h, r.tags).to_api()
        lm = None
        if blob:
            d = orjson.loads(blob)
            text = d.get("x")
            if text and text.startswith(TEXT_PREFIX):
                try:
                    d["x"] = hub.keyring.decrypt_text(text, b"text")
                except ValueError:
                    d["x"] = None
            lm = {"id": last[0].decode(), "text": _preview(d), "direction": d.get("d"),
                  "ts": d.get("t"), "channel_id": d.get("c"), "author_kind": d.get("a")}
        due = r.h.get("sla_due")
        item.update({
            "customer_name": names.get(r.h["customer"]),
            "last_message": lm,
            "unread": int(n or 0),
            "sla_due_ts": int(due) if due else None,
            "sla_breached": bool(due) and int(due) <= now,
            # the resolution clock (core/pipeline/sla_resolution.py): None while paused or off
            "resolution_due_ts": int(r.h["res_due"]) if r.h.get("res_due") else None,
        })
        item.setdefault("escalated", r.h.get("escalated") == "1")
        out.append(item)
    return out
