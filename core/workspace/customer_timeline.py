"""One customer's timeline: every conversation of theirs the caller may see, on every channel,
merged in time order.

A customer linked across channels (link codes, merges: core/identity) has one conversation per
channel (or one that several channels joined), each with its own timeline
(``td:conv:{id}:timeline``, scored by the platform's timestamp of each message: the order the
conversation view shows). This reads the newest ``limit`` entries before a cursor from each of
those timelines in one pipelined round trip and merges them, newest first; the cursor is the
last entry served, ``{score}:{conversation}:{message}``, so paging is exact even when messages
of two conversations share a millisecond. Cost: one ZRANGE per conversation (the customer's
200 newest, as :func:`access.conversations_of` reads them) and one HMGET per conversation that
has entries on the page.

Only conversations the caller may see are read: another team's conversation with the same
customer stays out of the page (its existence is not told).
"""

from __future__ import annotations

from tongdai.core.errors import BadRequest
from tongdai.core.hub import Hub
from tongdai.core.models import Message
from tongdai.core.pipeline import store
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal

Entry = tuple[float, str, str]  # (score, conversation id, message id): newest first = largest


def _cursor(before: str | None) -> Entry | None:
    if not before:
        return None
    score, _, rest = before.partition(":")
    conv, sep, mid = rest.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(score), conv, mid
    except ValueError:
        raise BadRequest(f"cursor {before!r} is not one this API gave out") from None


def page(hub: Hub, principal: Principal, customer_id: str, before: str | None,
         limit: int) -> tuple[list[Message], str | None]:
    """The customer's newest ``limit`` messages before ``before`` across the conversations
    ``principal`` may see, newest first, and the cursor for older ones (None: no more)."""
    cur = _cursor(before)
    conv_ids = [c.id for c in access.conversations_of(hub, principal, customer_id)]
    if not conv_ids:
        access.customer(hub, principal, customer_id)  # 404 unless an admin
        return [], None
    hi = cur[0] if cur else "+inf"
    want = limit + 1
    found: list[Entry] = []
    todo = {cid: 16 for cid in conv_ids}  # conversation -> rows beyond ``want`` to read
    while todo:
        pipe = hub.redis.pipeline(transaction=False)
        for cid, extra in todo.items():
            pipe.zrange(hub.keys.timeline(cid), hi, "-inf", desc=True, byscore=True, offset=0,
                        num=want + extra, withscores=True)
        again = {}
        for (cid, extra), rows in zip(todo.items(), pipe.execute(), strict=True):
            got = [(s, cid, m.decode()) for m, s in rows]
            if cur:
                got = [e for e in got if e < cur]
            if len(got) < want and len(rows) == want + extra:
                again[cid] = extra * 4  # many entries tie with the cursor: read wider
                continue
            found.extend(got[:want])
        todo = again
    found.sort(reverse=True)
    served = found[:limit]
    nxt = f"{int(served[-1][0])}:{served[-1][1]}:{served[-1][2]}" if len(found) > limit else None
    by_conv: dict[str, list[str]] = {}
    for _, cid, mid in served:
        by_conv.setdefault(cid, []).append(mid)
    pipe = hub.redis.pipeline(transaction=False)
    for cid, mids in by_conv.items():
        pipe.hmget(hub.keys.messages(cid), mids)
    blobs = {}
    for (cid, mids), got in zip(by_conv.items(), pipe.execute(), strict=True):
        blobs.update({(cid, mid): b for mid, b in zip(mids, got, strict=True)})
    out = [store.reveal(hub, Message.from_blob(mid, cid, blobs[(cid, mid)]))
           for _, cid, mid in served if blobs.get((cid, mid))]
    return out, nxt
