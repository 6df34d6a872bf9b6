"""Inbox search (``q``): every message, customer name and identifier, through the search index.

Exact hits first: a conversation id, and the conversations of customers holding the phone or
address typed (in any format, normalised as ingest does, found through the blind index) or
whose name or identifiers match (``core/workspace/search_index.py``). Then conversations by
their newest message matching the text — diacritics, case and Chinese script ignored, so
"nap the" finds "nạp thẻ" and 帳號 finds 账号 — within ``since``/``until``. Every hit passes
the other filters and the agent's access, read from Redis (the truth: status, queue, tags
change after the text was indexed); with a channel, only the conversations the index knows
have had it are sent to that check (a superset of those on it now). The index is walked in
one statement, newest first; Redis checks the candidates in batches: a page's worth first,
then as many as the rest of the page needs at the share that passed so far (at most twice
those checked before), so a search whose filters pass few reads about the rows it needs and
makes a few round trips. The cursor is the last hit: ``-updated:conv`` among the exact ones,
``rowid:conv`` among messages. One request walks no more than about ``SEARCH_SCAN``
matching messages (then a shorter page, with a cursor to go on).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace

from tongdai.core.crypto import SUBJECT_PREFIX, TEXT_PREFIX
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.workspace import access, search_index
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.inbox_index import Filters, Row, _beyond, _cursor, _load, passing

SEARCH_SCAN = 6000        # matching messages one request walks, at most
DIRECT_MAX = 200          # conversations of exact (id, identifier, name) hits, at most
BATCH = 1000              # conversations that may pass, sent to Redis's check at once, at most


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




def _direct(hub: Hub, f: Filters, query: str | None, regions: tuple[str, ...]) -> list[str]:
    """Conversation ids of exact hits: id, identifier, customers by name or identifier."""
    out = _direct_hits(hub, f.q or "")
    if query:
        customers = search_index.open_index().customers(query)
        if customers:
            pipe = hub.redis.pipeline(transaction=False)
            for c in customers:
                pipe.zrevrange(hub.keys.customer_conversations(str(c)), 0, 49)
            out += [c.decode() for convs in pipe.execute() for c in convs]
    return list(dict.fromkeys(out))[:DIRECT_MAX]


def _batches(index: search_index.SearchIndex, query: str, before: int | None, f: Filters,
             seen: set[str], want: int, need: Callable[[], int]
             ) -> Iterator[tuple[list[tuple[str, float]], tuple[str, float] | None]]:
    """The conversations of matching messages, newest match first, not ``seen`` before, in
    batches for Redis's check: ([(conversation, rowid)], where the walk stopped). The first
    batch ends with the chunk that brings a page's worth (most searches end there), the next
    ones when they hold ``need()`` (what the rest of the page will take, at the share that
    passed so far): one round trip to Redis per batch, however many rows the index walked to
    fill it, and no more rows walked than the page is likely to need. After ``SEARCH_SCAN``
    matching messages walked (a mark of the index counts for the rows it stands for), the
    last batch comes with the (conversation, rowid) the walk stopped at, else None."""
    fresh: list[tuple[str, float]] = []
    target, walked = want, 0
    walk = index.messages(query, before, f.since, f.until, first=2 * want, channel=f.channel)
    with closing(walk):  # (the walk holds a statement open until it ends or is closed)
        for chunk in walk:
            for rid, conv, maybe in chunk:
                if not maybe:  # a mark: rows of conversations that never had the channel
                    walked += search_index.MARK
                    continue
                walked += 1
                if conv in seen:
                    continue
                seen.add(conv)
                # on a later page, a conversation with a match at or above the cursor was
                # shown (or filtered out) on an earlier one
                if before is not None and index.newer_match(query, conv, before, f.until):
                    continue
                fresh.append((conv, float(rid)))
            if walked >= SEARCH_SCAN:
                yield fresh, (chunk[-1][1], float(chunk[-1][0]))
                return
            if len(fresh) >= target:
                yield fresh, None
                fresh, target = [], need()
    if fresh:
        yield fresh, None


def _search(hub: Hub, p: Principal, f: Filters, after: tuple[float, str] | None, limit: int,
            now: int) -> tuple[list[Row], str | None]:
    visible = access.visible_queues(hub, p)
    regions = tuple(hub.config.hub.identity.regions)
    query = search_index.match(f.q or "", regions)
    index = search_index.open_index()
    direct = _direct(hub, f, query, regions)
    out: list[Row] = []
    if after is None or after[0] < 0:  # exact hits first, latest activity first
        ok = passing(hub, direct, f, p, visible, now)
        rows = [r for r in _load(hub, [(c, 0.0) for c in direct if c in ok]) if r is not None]
        for r in rows:  # (their cursor is negative: -updated)
            r.score = -float(r.h["updated"])
        rows.sort(key=lambda r: (r.score, r.id))
        if after is not None:
            rows = [r for r in rows if _beyond(r.score, r.id, after, False)]
        if len(rows) >= limit:
            return rows[:limit], _cursor(rows[limit - 1].score, rows[limit - 1].id)
        out = rows
    if query is None:
        return out, None
    before = int(after[0]) if after is not None and after[0] >= 0 else None
    # message hits: the time range is the message's, not the conversation's activity
    g = replace(f, since=None, until=None)
    seen = set(direct)
    hits: list[tuple[str, float]] = []
    want = limit - len(out)
    nxt: str | None = None
    checked = passed = 0

    def need() -> int:
        """The next batch: the rest of the page at the share that passed so far, but at most
        twice what was checked so far (a share from a few passes is rough: measured, this
        walked half as many rows as trusting it)."""
        rest = want - len(hits)
        guess = rest * checked // passed + 1 if passed else BATCH
        return max(rest, min(BATCH, guess, 2 * checked))

    batches = _batches(index, query, before, f, seen, want, need)
    with closing(batches):
        for fresh, stop in batches:
            ask = [c for c, _ in fresh]
            ok = passing(hub, ask, g, p, visible, now)
            checked, passed = checked + len(ask), passed + len(ok)
            for conv, rid in fresh:
                if len(hits) == want:  # full, and more follow
                    nxt = _cursor(hits[-1][1], hits[-1][0])
                    break
                if conv in ok:
                    hits.append((conv, rid))
            if nxt is None and stop is not None:  # walked enough: on from where it stopped
                nxt = _cursor(stop[1], stop[0])
            if nxt is not None:
                break
    out += [r for r in _load(hub, hits) if r is not None] if hits else []
    return out, nxt
