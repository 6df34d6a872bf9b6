"""Inbox search (``q``): by conversation id, identifier, customer name and message text.

Exact hits by conversation id and by identifier (a phone or address in any
format, normalised as ingest does, found through the blind index), plus substring matches —
diacritics and case ignored, so "nguyen van a" finds "Nguyễn Văn A" — on the customer's name
and the latest ``SEARCH_MESSAGES`` messages' text of the most recent ``SEARCH_RECENT``
conversations that pass the other filters. Names and (with ``security.encrypt_message_text``)
texts are encrypted at rest, so matching them means decrypting: that bound is what keeps a
search affordable. Older conversations are found by id or identifier.
"""

from __future__ import annotations

import re

import orjson

from tongdai.core.crypto import SUBJECT_PREFIX, TEXT_PREFIX
from tongdai.core.hub import Hub
from tongdai.core.identity import identifiers
from tongdai.core.pipeline.tagging import fold
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.inbox_index import (
    Filters,
    Row,
    _beyond,
    _cursor,
    _load,
    _matches,
    _source,
    _walk,
)

SEARCH_RECENT = 2000      # conversations whose names and texts a search decrypts and matches
SEARCH_MESSAGES = 10      # latest messages per conversation a text search looks at
SEARCH_SCAN = 20_000      # index entries looked at to find those SEARCH_RECENT


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
