"""Live updates for every open console, from one change-feed reader per process (asyncio).

``GET /api/v1/events/stream`` used to hold a web thread and a Redis connection per console, so
sixteen open consoles stalled the platforms' webhooks. Here one task per process reads the feed
(``XREAD BLOCK`` on one connection) and hands each batch to every connected console that may
see it; a console costs a coroutine and a bounded queue, not a thread.

The rules are the Flask route's (``webhooks/api/events.py``): the same frames, ``ready`` /
``reset`` first, ``Last-Event-ID`` resume (the backlog is read once, then the live batches,
nothing twice), the same visibility (``events.shown_to``), heartbeats that also move the
client's ``Last-Event-ID`` past events it may not see. The credentials are checked again every
``RECHECK_S`` seconds (a revoked token or a disabled user's stream ends with ``ended``), and a
reader that falls ``QUEUE_MAX`` batches behind is dropped: its browser reconnects and resumes
from the feed, so nothing is lost and nothing is buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from http.cookies import SimpleCookie
from types import SimpleNamespace
from urllib.parse import parse_qs

import orjson
import redis
import redis.asyncio as aredis

from tongdai.core import metrics
from tongdai.core.errors import BadRequest, TongdaiError, Unauthorized
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.workspace.access import Principal
from tongdai.webhooks.api import SESSION_COOKIE, principal_from_session, principal_from_token
from tongdai.webhooks.api.events import CUSTOMER_EVENTS, RETRY_MS, frame, order, shown_to, start_of

log = logging.getLogger(__name__)
QUEUE_MAX = 64        # batches waiting for one reader; past that the reader is dropped
RECHECK_S = float(os.environ.get("TONGDAI_STREAM_RECHECK_S", "5"))  # credentials, this often
HEARTBEAT_S = 15.0
MAX_STREAM_S = 3600.0  # then EventSource reconnects (spreads long-lived streams over processes)
READ_COUNT = 500
READ_BLOCK_MS = 5000
SOCKET_TIMEOUT_S = 15.0  # above READ_BLOCK_MS
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"),
               (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Listener:
    """One open stream: who it is for, and the frames waiting to be written."""

    def __init__(self, principal: Principal, after: str) -> None:
        self.principal = principal
        self.high = after  # the newest entry id handed to this reader (nothing at or below twice)
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_MAX)
        self.dropped = False

    def offer(self, events: list[feed.FeedEvent], shown: list[feed.FeedEvent],
              text: str | None, frames: dict[str, str]) -> None:
        """Queue ``shown`` (the visible part of a batch; ``text`` its frames when it is the
        whole batch); track the batch's end either way."""
        if not events:
            return
        last = order(events[-1].id)
        if last <= order(self.high):
            return
        if order(events[0].id) <= order(self.high):  # overlaps what it had: only the rest
            mark = order(self.high)
            shown, text = [e for e in shown if order(e.id) > mark], None
        self.high = events[-1].id
        if not shown or self.dropped:
            return
        try:
            self.queue.put_nowait(text if text is not None else
                                  "".join(frames[e.id] for e in shown))
        except asyncio.QueueFull:  # a slow reader: end it; it resumes from its Last-Event-ID
            self.dropped = True


class Fanout:
    """The process's one feed reader and its listeners."""

    def __init__(self, hub: Hub, url: str) -> None:
        self.hub = hub
        # A few connections for the whole process, whatever the number of consoles: the feed
        # reader holds one; catch-ups and placings wait for a free one rather than open more.
        # The reader's XREAD BLOCK waits READ_BLOCK_MS; the socket timeout sits above it (not
        # redis-py 8's 5 s default, not None: a Redis gone silent must not hang the reader).
        pool = aredis.BlockingConnectionPool.from_url(
            url, max_connections=16, timeout=30, socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=5)
        self.redis = aredis.Redis(connection_pool=pool)
        self.listeners: set[Listener] = set()
        self.cursor: str | None = None
        self._task: asyncio.Task | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Start the reader at the feed's end, once (the first stream of the process)."""
        async with self._starting:
            if self._task is None:
                last = await self.redis.xrevrange(self.hub.keys.feed(), count=1)
                self.cursor = last[0][0].decode() if last else "0-0"
                self._task = asyncio.create_task(self._run(), name="feed-fanout")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()

    async def _run(self) -> None:
        key = self.hub.keys.feed()
        while True:
            try:
                res = await self.redis.xread({key: self.cursor}, count=READ_COUNT,
                                             block=READ_BLOCK_MS)
            except (redis.RedisError, OSError) as exc:
                log.warning("feed reader: Redis error %s; retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if not res:
                continue
            entries = res[0][1]
            self.cursor = entries[-1][0].decode()
            events = feed.decode(entries)
            if events and self.listeners:
                try:
                    await self.deliver(events)
                except Exception:  # said (log.exception); the readers resume from the feed
                    log.exception("feed reader: could not hand out a batch; its readers resume")
                    for li in self.listeners:
                        li.dropped = True

    async def places(self, events: list[feed.FeedEvent]) -> dict[str, SimpleNamespace]:
        """Queue and assignee of the batch's conversations, one pipelined read for all."""
        ids = sorted({str(e.data["conversation_id"]) for e in events
                      if e.data.get("conversation_id")})
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hmget(self.hub.keys.conversation(cid), "queue", "assignee")
        out = {}
        for cid, (queue, assignee) in zip(ids, await pipe.execute(), strict=True):
            out[cid] = SimpleNamespace(queue=queue.decode() if queue else "",
                                       assignee=assignee.decode() if assignee else None)
        return out

    async def deliver(self, events: list[feed.FeedEvent], to: set[Listener] | None = None
                      ) -> None:
        listeners = list(to if to is not None else self.listeners)
        need_places = any(not li.principal.is_admin for li in listeners)
        places = await self.places(events) if need_places else {}
        frames = {e.id: frame(e.id, e.type, e.data) for e in events}
        whole = "".join(frames.values())  # built once; most readers get all or nothing
        merges = any(e.type in CUSTOMER_EVENTS for e in events)
        for i, li in enumerate(listeners):
            if merges and not li.principal.is_admin:  # asks Redis who sees the customer
                shown = await asyncio.to_thread(shown_to, self.hub, li.principal, events, places)
            else:  # in memory
                shown = shown_to(self.hub, li.principal, events, places)
            li.offer(events, shown, whole if len(shown) == len(events) else None, frames)
            if i % 100 == 99:
                await asyncio.sleep(0)  # let webhooks and writes in between a big floor


def _header(scope: dict, name: bytes) -> str:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return ""


def authenticate(hub: Hub, scope: dict) -> tuple[Principal, Callable[[], Principal | None]]:
    """The caller (bearer token or console session, as the API takes them) and how to ask
    again later; Unauthorized otherwise. Runs in a thread (it reads Redis)."""
    auth = _header(scope, b"authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send 'Authorization: Bearer <token>' "
                               "(create one: tongdai token create)")
        p = principal_from_token(hub, token)
        if p is None:
            raise Unauthorized("unknown or revoked token")
        return p, lambda: principal_from_token(hub, token)
    jar = SimpleCookie()
    with contextlib.suppress(Exception):
        jar.load(_header(scope, b"cookie"))
    cookie = jar[SESSION_COOKIE].value if SESSION_COOKIE in jar else ""
    if not cookie:
        raise Unauthorized("log in to the console, or send 'Authorization: Bearer <token>'")

    def by_session() -> Principal | None:
        found = principal_from_session(hub, cookie)
        return found[0] if found else None
    p = by_session()
    if p is None:
        raise Unauthorized("your session has ended; log in again")
    return p, by_session


async def _error(send, exc: TongdaiError) -> None:
    body = orjson.dumps(exc.to_json())
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def serve(fanout: Fanout, scope: dict, receive, send, heartbeat_s: float = HEARTBEAT_S,
                recheck_s: float = RECHECK_S, max_s: float = MAX_STREAM_S) -> None:
    """One console's stream, until it disconnects, its credentials end or it falls behind."""
    hub = fanout.hub
    try:
        p, allowed = await asyncio.to_thread(authenticate, hub, scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        last = _header(scope, b"last-event-id") or (query.get("last_event_id") or [""])[0]
        start, reset = await asyncio.to_thread(start_of, hub, last or None)
    except (BadRequest, Unauthorized) as exc:
        await _error(send, exc)
        return
    await fanout.start()
    me = Listener(p, start)
    gone = asyncio.Event()

    async def watch() -> None:  # the client going away ends the stream at once
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()
    watcher = asyncio.create_task(watch())
    metrics.stream_opened()
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await send({"type": "http.response.body", "more_body": True, "body": (
            f"retry: {RETRY_MS}\n" + frame(start, "reset" if reset else "ready",
                                             {"user": p.name})).encode()})
        await _catch_up(fanout, me)
        await _pump(fanout, me, send, gone, allowed, heartbeat_s, recheck_s, max_s)
    finally:
        fanout.listeners.discard(me)
        watcher.cancel()
        metrics.stream_closed()


async def _catch_up(fanout: Fanout, me: Listener) -> None:
    """Hand ``me`` what it missed (read once from the feed), then join the live batches with
    no gap: the reader's position is checked and ``me`` added with no await in between."""
    while True:
        upto = fanout.cursor
        if upto and order(me.high) < order(upto):
            events = feed.decode(await fanout.redis.xrange(
                fanout.hub.keys.feed(), min=f"({me.high}", max=upto))
            if events:
                await fanout.deliver(events, to={me})
            me.high = upto
        if fanout.cursor == upto:
            fanout.listeners.add(me)
            return


async def _pump(fanout: Fanout, me: Listener, send, gone: asyncio.Event,
                allowed: Callable[[], Principal | None], heartbeat_s: float, recheck_s: float,
                max_s: float) -> None:
    loop = asyncio.get_running_loop()
    ends = loop.time() + max_s
    beat, recheck = loop.time() + heartbeat_s, loop.time() + recheck_s
    sent = me.high
    while not gone.is_set() and not me.dropped and loop.time() < ends:
        wait = max(0.01, min(beat, recheck, ends) - loop.time())
        chunk = ""
        with contextlib.suppress(TimeoutError):
            chunk = await asyncio.wait_for(me.queue.get(), wait)
            while not me.queue.empty():  # whatever else is waiting goes in the same write
                chunk += me.queue.get_nowait()
        if loop.time() >= recheck:
            try:
                now_as = await asyncio.to_thread(allowed)
            except (redis.RedisError, OSError):  # cannot tell: end; the browser comes back
                break
            if now_as is None:
                await send({"type": "http.response.body", "more_body": False,
                            "body": frame(me.high, "ended", {}).encode()})
                return
            me.principal, recheck = now_as, loop.time() + recheck_s
        if chunk:
            await send({"type": "http.response.body", "more_body": True,
                        "body": chunk.encode()})
            sent, beat = me.high, loop.time() + heartbeat_s
        elif loop.time() >= beat:
            # An id-only frame moves the client's Last-Event-ID past events it may not see.
            line = (f"id: {me.high}\n" if me.high != sent else "") + ": keep-alive\n\n"
            await send({"type": "http.response.body", "more_body": True,
                        "body": line.encode()})
            sent, beat = me.high, loop.time() + heartbeat_s
    if not gone.is_set():
        await send({"type": "http.response.body", "more_body": False, "body": b""})
