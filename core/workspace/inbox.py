"""The agent's inbox: filtered lists of the conversations an agent may see, unread counts,
search by customer name, identifier, conversation id or message text.

Unread: ``td:unread`` is a sorted set conversation → customer messages since an agent last
read or answered it. The ingest script adds one per inbound message (one ZINCRBY: both the
counter and the set of unread conversations, so queue badges never scan whole queues);
``mark_read`` and an agent's reply (``create_outbound.lua``) remove the conversation;
resolving it too.

Lists walk one sorted set in its own order, a chunk at a time, and filter each chunk until the
page is full: the SLA index (due first) with ``sla=``, the queue (priority, then oldest) with
``queue=``, else the status index (latest activity first). The cursor is the last
conversation returned (``score:id``, exclusive), so a page is never short while more match,
and nothing is skipped or repeated across pages. One request looks at no more than
``SCAN_BUDGET`` conversations: past that it returns what it found with a cursor at the last
one looked at (a shorter page, still nothing skipped).

Search (``q``): exact hits by conversation id and by identifier (a phone or address in any
format, normalised as ingest does, found through the blind index), plus substring matches —
diacritics and case ignored, so "nguyen van a" finds "Nguyễn Văn A" — on the customer's name
and the latest ``SEARCH_MESSAGES`` messages' text of the most recent ``SEARCH_RECENT``
conversations that pass the other filters. Names and (with ``security.encrypt_message_text``)
texts are encrypted at rest, so matching them means decrypting: that bound is what keeps a
search affordable. Older conversations are found by id or identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.crypto import SUBJECT_PREFIX, TEXT_PREFIX
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.models import Conversation, ConversationStatus
from tongdai.core.pipeline import feed
from tongdai.core.pipeline.tagging import fold
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal

SEARCH_RECENT = 2000      # conversations whose names and texts a search decrypts and matches
SEARCH_MESSAGES = 10      # latest messages per conversation a text search looks at
SEARCH_SCAN = 20_000      # index entries looked at to find those SEARCH_RECENT
SCAN_BUDGET = 5000        # index entries one list request looks at, at most
CHUNK = 200
PREVIEW = 140
SLA_FILTERS = ("due", "breached")


@dataclass(slots=True)
class Filters:
    status: str = ConversationStatus.OPEN.value
    queue: str | None = None
    channel: str | None = None
    tag: str | None = None
    priority_min: int | None = None
    assignee: str | None = None   # a user's name; "" = nobody; None = anyone
    sla: str | None = None        # "due": a wait is running; "breached": past its due time
    q: str | None = None


@dataclass(slots=True)
class Row:
    """A conversation as loaded for filtering: its hash and tags, and where it sits."""

    id: str
    score: float
    h: dict[str, str]
    tags: list[str]


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


# -- walking an index ------------------------------------------------------------------------
def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    m = re.fullmatch(r"(-?\d{1,20}):([A-Za-z0-9_.\-]{1,40})", cursor)
    if not m:
        raise BadRequest("this cursor is not one this API gave out")
    return float(m.group(1)), m.group(2)


def _cursor(score: float, member: str) -> str:
    return f"{int(score)}:{member}"


def _beyond(score: float, member: str, after: tuple[float, str], desc: bool) -> bool:
    s, m = after
    if desc:
        return score < s or (score == s and member < m)
    return score > s or (score == s and member > m)


def _walk(hub: Hub, key: str, after: tuple[float, str] | None, desc: bool,
          bound: float | None, first: int | None = None) -> Iterator[list[tuple[str, float]]]:
    """Chunks of (member, score) strictly after ``after``, in the sorted set's order (score,
    then member; both reversed when ``desc``), up to score ``bound`` (ascending only); the
    first chunk of ``first`` rows (a page's worth), the others of ``CHUNK``.

    Each chunk restarts at the last score seen, skipping the rows of that score already
    passed (OFFSET), so equal scores — a batch's messages share one timestamp — neither
    repeat nor vanish, and the cost stays O(log N + chunk)."""
    r = hub.redis
    start: float | str = after[0] if after else ("+inf" if desc else "-inf")
    end: float | str = "-inf" if desc else (bound if bound is not None else "+inf")
    ties = 0
    last = after
    num = first or CHUNK
    while True:
        rows = r.zrange(key, start, end, desc=desc, byscore=True, offset=ties, num=num,
                        withscores=True)
        out = []
        for m, s in rows:
            member = m.decode()
            if last is None or _beyond(s, member, last, desc):
                out.append((member, s))
        if out:
            yield out
        if len(rows) < num:
            return
        num = CHUNK
        top = rows[-1][1]
        same = sum(1 for _, s in rows if s == top)
        ties = ties + same if (isinstance(start, float) and top == start) else same
        start = top
        if out:  # (rows before the cursor are not "seen": the cursor stays the bar)
            last = (out[-1][1], out[-1][0])


def _load(hub: Hub, rows: list[tuple[str, float]]) -> list[Row | None]:
    pipe = hub.redis.pipeline(transaction=False)
    for m, _ in rows:
        pipe.hgetall(hub.keys.conversation(m))
        pipe.smembers(hub.keys.conversation_tags(m))
    replies = pipe.execute()
    out: list[Row | None] = []
    for n, (m, s) in enumerate(rows):
        raw, tags = replies[2 * n], replies[2 * n + 1]
        h = {k.decode(): v.decode() for k, v in raw.items()}
        ok = all(f in h for f in ("customer", "channel", "status", "queue", "created", "updated"))
        out.append(Row(m, s, h, sorted(t.decode() for t in tags)) if ok else None)
    return out


def _source(hub: Hub, f: Filters, now: int) -> tuple[str, bool, float | None]:
    """The index a list walks: (key, descending, highest score)."""
    k = hub.keys
    if f.sla:
        return k.sla_due(), False, (now if f.sla == "breached" else None)
    if f.queue and f.status == ConversationStatus.OPEN.value:  # snoozed ones are not queued
        return k.queue(f.queue), False, None
    return k.conversations_by_status(f.status), True, None


def _matches(row: Row, f: Filters, p: Principal, visible: set[str] | None, now: int) -> bool:
    h = row.h
    if visible is not None and h["queue"] not in visible and h.get("assignee") != p.name:
        return False
    if h["status"] != f.status or (f.queue and h["queue"] != f.queue):
        return False
    if f.channel and h["channel"] != f.channel:
        return False
    if f.tag and f.tag not in row.tags:
        return False
    if f.priority_min is not None and int(h.get("priority") or 0) < f.priority_min:
        return False
    if f.assignee is not None and (h.get("assignee") or "") != f.assignee:
        return False
    if f.sla:
        due = h.get("sla_due")
        if not due or (f.sla == "breached" and int(due) > now):
            return False
    return True


def check(hub: Hub, p: Principal, f: Filters) -> None:
    """BadRequest / NotFound for filters that cannot be answered."""
    if f.status not in ConversationStatus._value2member_map_:
        raise BadRequest(f"status must be one of {', '.join(s.value for s in ConversationStatus)}")
    if f.sla is not None and f.sla not in SLA_FILTERS:
        raise BadRequest("sla must be 'due' or 'breached'")
    if f.queue is not None:
        visible = access.visible_queues(hub, p)
        if f.queue not in hub.config.hub.routing.queues or (
                visible is not None and f.queue not in visible):
            raise NotFound(f"no queue {f.queue!r} among yours")


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
    out: list[Row] = []
    scanned = 0
    # the first chunk is one page (and one more, to know whether more follow): a page of 50
    # loads 51 conversations when most match, not a whole chunk
    for chunk in _walk(hub, key, after, desc, bound, first=limit + 1):
        for (m, s), row in zip(chunk, _load(hub, chunk)):
            if len(out) == limit:  # full, and more follow
                return out, _cursor(out[-1].score, out[-1].id)
            scanned += 1
            if row is not None and _matches(row, f, p, visible, now):
                out.append(row)
            if scanned >= SCAN_BUDGET and len(out) < limit:
                return out, _cursor(s, m)
    return out, None


# -- search ------------------------------------------------------------------------------------
def _norm(text: str | None) -> str:
    return " ".join(fold(text).split()) if text else ""


def _direct_hits(hub: Hub, q: str) -> list[str]:
    """Conversations named by id, or of customers holding the phone / address typed."""
    q = q.strip()
    out: list[str] = []
    m = re.fullmatch(r"#?(\d{1,18})", q)
    if m:
        out.append(m.group(1))
    probes = []
    if "@" in q and (e := identifiers.email(q)):
        probes.append(("email", e))
    if re.fullmatch(r"\+?[\d\s().\-]{8,24}", q):
        regions = tuple(hub.config.hub.identity.regions)
        if ph := identifiers.phone(q, regions):
            probes.append(("phone", ph))
    if not probes:
        return out
    k, ring = hub.keys, hub.keyring
    pipe = hub.redis.pipeline(transaction=False)
    for kind, value in probes:
        pipe.hkeys(k.identifier_holders(kind, ring.blind_index(kind, value)))
    customers = {c.decode() for holders in pipe.execute() for c in holders}
    pipe = hub.redis.pipeline(transaction=False)
    for c in sorted(customers):
        pipe.zrevrange(k.customer_conversations(c), 0, 49)
    for convs in pipe.execute():
        out += [c.decode() for c in convs]
    return out


def _prefetch(hub: Hub, values: list[str]) -> None:
    """Load the customers' own keys of many sealed values in one round trip."""
    kids = set()
    for v in values:
        if v and v.startswith(TEXT_PREFIX):
            kid = hub.keyring.key_id_of(v)
            if kid and kid.startswith(SUBJECT_PREFIX):
                kids.add(kid)
    if kids:
        hub.subjects.prefetch(kids)


def _names(hub: Hub, customer_ids: list[str]) -> dict[str, str | None]:
    """Customer id → name in clear (None: none, or erased)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    pipe = hub.redis.pipeline(transaction=False)
    for c in ids:
        pipe.hget(hub.keys.customer(c), "name")
    sealed = [v.decode() if v else None for v in pipe.execute()]
    _prefetch(hub, [s for s in sealed if s])
    out: dict[str, str | None] = {}
    for c, s in zip(ids, sealed):
        try:
            out[c] = hub.keyring.decrypt_text(s, b"name") if s else None
        except ValueError:  # sealed with a data key no longer configured
            out[c] = None
    return out


def _texts(hub: Hub, conv_ids: list[str]) -> dict[str, list[str]]:
    """Conversation → the texts (and mail subjects) of its latest messages, in clear."""
    k = hub.keys
    pipe = hub.redis.pipeline(transaction=False)
    for c in conv_ids:
        pipe.zrevrange(k.timeline(c), 0, SEARCH_MESSAGES - 1)
    mids = pipe.execute()
    pipe = hub.redis.pipeline(transaction=False)
    for c, ids in zip(conv_ids, mids):
        if ids:
            pipe.hmget(k.messages(c), ids)
    blobs = iter(pipe.execute())
    found: dict[str, list[tuple[str, bytes]]] = {}
    sealed: list[str] = []
    for c, ids in zip(conv_ids, mids):
        if not ids:
            continue
        for b in next(blobs):
            if not b:
                continue
            d = orjson.loads(b)
            for field, purpose in (("x", b"text"), ("sj", b"subject")):
                v = d.get(field)
                if isinstance(v, str) and v:
                    found.setdefault(c, []).append((v, purpose))
                    sealed.append(v)
    _prefetch(hub, sealed)
    ring = hub.keyring
    out: dict[str, list[str]] = {}
    for c, values in found.items():
        texts = []
        for v, purpose in values:
            try:
                texts.append(ring.decrypt_text(v, purpose) or "")
            except ValueError:  # a value sealed with a key no longer configured
                continue
        out[c] = texts
    return out


def _search(hub: Hub, p: Principal, f: Filters, after: tuple[float, str] | None, limit: int,
            now: int) -> tuple[list[Row], str | None]:
    key, desc, bound = _source(hub, f, now)
    visible = access.visible_queues(hub, p)
    needle = _norm(f.q)
    # the most recent conversations passing the other filters: what names and texts are
    # matched against (from the start of the index: every page sees the same set)
    cands: list[Row] = []
    scanned = 0
    for chunk in _walk(hub, key, None, desc, bound):
        for row in _load(hub, chunk):
            scanned += 1
            if row is not None and _matches(row, f, p, visible, now):
                cands.append(row)
        if len(cands) >= SEARCH_RECENT or scanned >= SEARCH_SCAN:
            break
    cands = cands[:SEARCH_RECENT]
    hits: dict[str, Row] = {}
    # exact: conversation id, identifier (any age, still filtered and ordered by the index)
    direct = [c for c in dict.fromkeys(_direct_hits(hub, f.q or ""))]
    if direct:
        pipe = hub.redis.pipeline(transaction=False)
        for c in direct:
            pipe.zscore(key, c)
        scored = [(c, s) for c, s in zip(direct, pipe.execute())
                  if s is not None and (bound is None or s <= bound)]
        for row in _load(hub, scored) if scored else []:
            if row is not None and _matches(row, f, p, visible, now):
                hits[row.id] = row
    if needle:
        names = _names(hub, [r.h["customer"] for r in cands])
        rest = []
        for row in cands:
            if needle in _norm(names.get(row.h["customer"])):
                hits[row.id] = row
            elif row.id not in hits:
                rest.append(row)
        texts = _texts(hub, [r.id for r in rest]) if rest else {}
        for row in rest:
            if any(needle in _norm(t) for t in texts.get(row.id, ())):
                hits[row.id] = row
    ordered = sorted(hits.values(), key=lambda r: (r.score, r.id), reverse=desc)
    if after is not None:
        ordered = [r for r in ordered if _beyond(r.score, r.id, after, desc)]
    out = ordered[:limit]
    return out, (_cursor(out[-1].score, out[-1].id) if len(ordered) > limit else None)


# -- what a list item shows ----------------------------------------------------------------------
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
    last_ids = [[max(top, key=lambda x: (x[1], len(x[0]), x[0]))[0]] if top else []
                for top in replies[:-1]]
    names = _names(hub, [r.h["customer"] for r in rows])
    pipe = hub.redis.pipeline(transaction=False)
    for r, last in zip(rows, last_ids):
        pipe.hget(k.messages(r.id), last[0] if last else "-")
    blobs = pipe.execute()
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
        })
        item.setdefault("escalated", r.h.get("escalated") == "1")
        out.append(item)
    return out
