"""Live updates: ``GET /api/v1/events/stream``, Server-Sent Events read from the change feed.

Each event is ``id: <feed entry id>``, ``event: <type>`` (``message.created``,
``conversation.assigned``, ...), ``data: <the feed event as JSON>``. A client that reconnects
with ``Last-Event-ID`` (browsers' EventSource does it by itself) gets everything it missed while
the feed still holds it; when the feed no longer does, it gets one ``reset`` event and reloads
its lists. A caller sees only the events of conversations they may see, notes that mention
them, presence changes, merges/splits of customers they see, and (supervisors) spike alerts.

A stream holds one web thread (gunicorn gthread) and one Redis connection, so it is bounded:
it ends after ``STREAM_MAX_S`` and the browser reconnects where it left off. A comment line
every ``HEARTBEAT_S`` keeps proxies from closing an idle stream, and each heartbeat checks that
the session or token is still valid (a disabled user's stream ends with an ``ended`` event) and
takes up the user's current role and teams (a user moved out of a team stops seeing its events).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import orjson
import redis
from flask import current_app, request
from spectree import Response as Resp

from tongdai.core import metrics
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.workspace import access
from tongdai.core.workspace.access import Principal
from tongdai.webhooks.api import (
    SESSION_COOKIE,
    bp,
    hub,
    principal,
    principal_from_session,
    principal_from_token,
    spec,
)
from tongdai.webhooks.api.schemas import ERRORS, Strict

log = logging.getLogger(__name__)
TAG = "events"
STREAM_MAX_S = 300.0   # then the browser reconnects with Last-Event-ID (frees the thread)
HEARTBEAT_S = 15.0
RETRY_MS = 2000        # how soon EventSource reconnects after a stream ends
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_TYPE = re.compile(r"^[a-z_.]{1,64}$")


class StreamQuery(Strict):
    last_event_id: str | None = None


def order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def start_of(h: Hub, after: str | None) -> tuple[str, bool]:
    """Where the stream starts, and whether the client missed events the feed no longer holds
    (its Last-Event-ID is older than the oldest entry): then it starts at the end."""
    if not after:
        return feed.last_id(h), False
    if not _ENTRY_ID.match(after):
        raise BadRequest("Last-Event-ID must be an event id this stream sent, "
                         "such as 1700000000000-0")
    oldest = feed.oldest_id(h)
    if oldest is not None and order(after) < order(oldest):
        return feed.last_id(h), True
    return after, False


def _still_allowed(h: Hub, p: Principal) -> Callable[[], Principal | None]:
    """The principal the credentials this stream was opened with stand for now (None: ended)."""
    if p.via == "session":
        cookie = request.cookies.get(SESSION_COOKIE, "")

        def by_session() -> Principal | None:
            found = principal_from_session(h, cookie)
            return found[0] if found else None
        return by_session
    token = request.headers.get("Authorization", "").partition(" ")[2].strip()
    return lambda: principal_from_token(h, token)


CUSTOMER_EVENTS = ("customer.merged", "customer.split")


def places(h: Hub, events: list[feed.FeedEvent]) -> dict[str, SimpleNamespace]:
    """Queue and assignee of the batch's conversations (one pipelined read): all
    ``access.can_see`` reads of a conversation."""
    conv_ids = sorted({str(e.data["conversation_id"]) for e in events
                       if e.data.get("conversation_id")})
    pipe = h.redis.pipeline(transaction=False)
    for cid in conv_ids:
        pipe.hmget(h.keys.conversation(cid), "queue", "assignee")
    return {cid: SimpleNamespace(queue=queue.decode() if queue else "",
                                 assignee=assignee.decode() if assignee else None)
            for cid, (queue, assignee) in zip(conv_ids, pipe.execute(), strict=True)}


def shown_to(h: Hub, p: Principal, events: list[feed.FeedEvent],
             where: dict[str, SimpleNamespace]) -> list[feed.FeedEvent]:
    """The events of ``events`` that ``p`` may see, given where their conversations are.
    In memory, except for customer merges and splits (who sees the customer: Redis)."""
    if p.is_admin:
        return events
    customers: dict[str, bool] = {}

    def sees_customer(cid: str) -> bool:
        if cid not in customers:
            try:
                access.customer(h, p, cid)
                customers[cid] = True
            except NotFound:
                customers[cid] = False
        return customers[cid]

    out = []
    for e in events:
        d = e.data
        mentioned = e.type == "note.created" and p.name in (d.get("mentions") or ())
        if e.type == "presence.changed" or mentioned:
            ok = True
        elif e.type == "spike.detected":  # hub-wide counts, no text (core/workspace/spikes.py)
            ok = p.at_least("supervisor")
        elif d.get("conversation_id"):
            conv = where.get(str(d["conversation_id"]))
            ok = (conv is not None and access.can_see(h, p, conv)) or d.get("assignee") == p.name
            if not ok and d.get("from_queue"):  # escalated out of one of their queues
                ok = d["from_queue"] in (access.visible_queues(h, p) or ())
        elif e.type in CUSTOMER_EVENTS and d.get("customer_id"):
            ok = sees_customer(str(d["customer_id"]))
        else:
            ok = False
        if ok:
            out.append(e)
    return out


def visible(h: Hub, p: Principal, events: list[feed.FeedEvent]) -> list[feed.FeedEvent]:
    """The events of ``events`` that ``p`` may see (one pipelined lookup per batch)."""
    return events if p.is_admin else shown_to(h, p, events, places(h, events))


def frame(entry_id: str, event_type: str, data: dict) -> str:
    kind = event_type if _TYPE.match(event_type or "") else "message"
    return f"id: {entry_id}\nevent: {kind}\ndata: {orjson.dumps(data).decode()}\n\n"


def _stream(h: Hub, p: Principal, start: str, reset: bool,
            allowed: Callable[[], Principal | None],
            max_s: float, heartbeat_s: float) -> Iterator[str]:
    yield f"retry: {RETRY_MS}\n"
    # The first event carries the start position as its id, so even a client that saw no
    # event before the stream ended resumes from here rather than from the (later) end.
    yield frame(start, "reset" if reset else "ready", {"user": p.name})
    cursor, sent = start, start
    deadline = time.monotonic() + max_s
    beat = recheck = time.monotonic() + heartbeat_s
    while (left := deadline - time.monotonic()) > 0:
        wait = max(1, int(min(left, beat - time.monotonic(), recheck - time.monotonic()) * 1000))
        try:
            events = feed.read_after(h, cursor, count=200, block_ms=wait)
        except redis.RedisError as exc:
            # End the stream; the browser reconnects from its Last-Event-ID when Redis is back.
            log.warning("event stream for %s ended: Redis error %s", p.name, type(exc).__name__)
            return
        if time.monotonic() >= recheck:  # busy or idle: the credentials are checked as often
            now_as = allowed()
            if now_as is None:
                yield frame(cursor, "ended", {})
                return
            p = now_as  # role or teams changed meanwhile: from here on, what they are now
            recheck = time.monotonic() + heartbeat_s
        if events:
            cursor = events[-1].id
            shown = visible(h, p, events)
            if shown:
                yield "".join(frame(e.id, e.type, e.data) for e in shown)
                sent, beat = shown[-1].id, time.monotonic() + heartbeat_s
        if time.monotonic() >= beat:
            # An id-only frame moves the client's Last-Event-ID past events it may not see.
            yield (f"id: {cursor}\n" if cursor != sent else "") + ": keep-alive\n\n"
            sent, beat = cursor, time.monotonic() + heartbeat_s


def _counted(frames: Iterator[str]) -> Iterator[str]:
    """The stream, counted in ``tongdai_sse_clients`` while it is open (WSGI servers)."""
    metrics.stream_opened()
    try:
        yield from frames
    finally:
        metrics.stream_closed()


@bp.get("/events/stream")
@spec.validate(query=StreamQuery, resp=Resp(HTTP_200=None, **ERRORS), tags=[TAG])
def event_stream():
    """Live events of the change feed (Server-Sent Events).

    ``text/event-stream`` from ``Last-Event-ID`` (header, or ``?last_event_id=``) or from now: ``message.created``/``updated``, ``conversation.*``,
    ``note.created``, ``presence.changed``, ``customer.merged``/``split``; first a ``ready``
    event (or ``reset``: reload your lists, the events you missed are gone). The stream ends
    after 5 minutes; EventSource reconnects and resumes by itself."""
    h, p = hub(), principal()
    start, reset = start_of(h, request.headers.get("Last-Event-ID")
                          or request.args.get("last_event_id"))
    cfg = current_app.config
    body = _counted(_stream(h, p, start, reset, _still_allowed(h, p),
                            float(cfg.get("SSE_MAX_SECONDS", STREAM_MAX_S)),
                            float(cfg.get("SSE_HEARTBEAT_SECONDS", HEARTBEAT_S))))
    # A (generator, status, headers) answer: spectree passes it through unread, so it streams
    # (a Response object would be read whole to validate it).
    return body, 200, {"Content-Type": "text/event-stream; charset=utf-8",
                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
