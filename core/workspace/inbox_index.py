"""The inbox's filters and rows, and walking one of its indexes (for core/workspace/inbox.py).

Lists walk one sorted set in its own order, a chunk at a time, and filter each chunk until the
page is full: the SLA index (due first) with ``sla=``, the queue (priority, then oldest) with
``queue=``, else the status index (latest activity first). The cursor is the last
conversation returned (``score:id``, exclusive), so a page is never short while more match,
and nothing is skipped or repeated across pages. One request looks at no more than
``SCAN_BUDGET`` conversations: past that it returns what it found with a cursor at the last
one looked at (a shorter page, still nothing skipped).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import ConversationStatus
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal

CHUNK = 200
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
    since: int | None = None      # search: messages from this time (ms)
    until: int | None = None      # search: messages up to this time (ms)


@dataclass(slots=True)
class Row:
    """A conversation as loaded for filtering: its hash and tags, and where it sits."""

    id: str
    score: float
    h: dict[str, str]
    tags: list[str]


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


def passing(hub: Hub, ids: list[str], f: Filters, p: Principal, visible: set[str] | None,
            now: int) -> set[str]:
    """Which of these conversations pass the filters and the access rules of ``_matches``
    (and ``since``/``until`` on their activity), decided inside Redis in one round trip
    (core/lua/inbox_filter.lua)."""
    if not ids:
        return set()
    args = [f.status, f.queue or "", f.channel or "", f.tag or "",
            "" if f.priority_min is None else f.priority_min,
            "*" if f.assignee is None else f.assignee, f.sla or "", now,
            "*" if visible is None else "\x1f".join(sorted(visible)) or "\x1f", p.name,
            "" if f.since is None else f.since, "" if f.until is None else f.until]
    return {m.decode() for m in hub.scripts.inbox_filter(keys=[], args=args + ids)}


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
