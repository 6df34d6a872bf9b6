"""The web server's front doors: ASGI apps under uvicorn, around the Flask app.

``create`` serves everything on one port (the console, the API, live streams and webhooks);
``create_inbound`` serves only the platforms' webhooks, in processes of their own: give the
platforms that port (`tongdai up` starts it on port + 1; the Procfile's ``inbound`` line), and
nothing an agent's browser does shares a process with them.

In the ``create`` app:

Three kinds of traffic reach one port, and none may hold up another:

- ``POST /webhooks/...`` — the platforms. Served by a thread pool of their own
  (``WEBHOOK_THREADS``): agents' requests never occupy it.
- ``GET /api/v1/events/stream`` — every open console's live updates, served on the event loop
  from one change-feed reader per process (``webhooks/streaming.py``): a console costs a
  coroutine, not a thread.
- everything else (the API, the console) — the agents. Served by a second thread pool
  (``AGENT_THREADS``).

Every request body is read here, on the event loop, before a thread is given the request: a
client that sends its body slowly (or stops, or sends fewer bytes than its Content-Length)
costs a coroutine until ``BODY_TIMEOUT_S``, never a thread, and a truncated body is refused
before anything is stored. A client stalled in its headers costs uvicorn a coroutine too.
"""

from __future__ import annotations

import asyncio
import os
import threading

import orjson
import redis
import redis.asyncio as aredis
from a2wsgi import WSGIMiddleware
from werkzeug.datastructures import Headers

from tongdai.core import metrics
from tongdai.core.errors import StoreUnavailable, TongdaiError
from tongdai.core.hub import Hub, redis_url
from tongdai.core.pipeline import rawlog
from tongdai.webhooks import MAX_BODY_BYTES, create_app, hub_of
from tongdai.webhooks.inbound import accept
from tongdai.webhooks.streaming import Fanout, serve

WEBHOOK_THREADS = int(os.environ.get("TONGDAI_WEBHOOK_THREADS", "8"))
AGENT_THREADS = int(os.environ.get("TONGDAI_AGENT_THREADS", "16"))
BODY_TIMEOUT_S = 15.0
STREAM_PATH = "/api/v1/events/stream"


class _BodyError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


async def _read_body(scope: dict, receive) -> bytes:
    """The whole request body, within the size limit and ``BODY_TIMEOUT_S``."""
    declared = None
    for k, v in scope.get("headers", ()):
        if k == b"content-length" and v.isdigit():
            declared = int(v)
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _BodyError(413, "RequestEntityTooLarge", f"bodies are limited to {MAX_BODY_BYTES} "
                                                       "bytes")
    chunks, size = [], 0
    async with asyncio.timeout(BODY_TIMEOUT_S):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _BodyError(400, "PayloadError", "the client went away mid-body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BodyError(413, "RequestEntityTooLarge",
                                 f"bodies are limited to {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    body = b"".join(chunks)
    if declared is not None and len(body) != declared:
        raise _BodyError(400, "PayloadError", f"the body ended after {len(body)} of the "
                                              f"{declared} bytes its Content-Length announced")
    return body


def _replay(body: bytes, receive):
    """A ``receive`` that hands the WSGI side the body already read, then the real one (a
    disconnect)."""
    sent = False

    async def again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return again


async def _answer(send, status: int, code: str, message: str, headers=()) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class Webhooks:
    """``POST /webhooks/<channel>`` on the event loop: verify (CPU, microseconds), one XADD on an
    async connection, 200 — no thread hop, so a webhook waits for nothing but Redis's fsync.
    The same steps as ``inbound.receive``; anything unusual (an unknown channel, a platform
    with one-time tokens, a GET handshake) goes through Flask as before."""

    def __init__(self, hub: Hub, url: str) -> None:
        self.hub = hub
        pool = aredis.BlockingConnectionPool.from_url(url, max_connections=32, timeout=10,
                                                      socket_timeout=30, socket_connect_timeout=5)
        self.redis = aredis.Redis(connection_pool=pool)

    async def __call__(self, scope: dict, body: bytes, send) -> bool:
        """True when it answered; False: hand the request to Flask."""
        adapter = self.hub.adapters.get(scope["path"][len("/webhooks/"):])
        if scope["method"] != "POST" or adapter is None:
            return False
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                           for k, v in scope.get("headers", ())])
        if adapter.replay_nonce(headers, body) is not None:
            return False  # one-time tokens (Mailgun): Flask's path checks and marks them
        try:
            raw, _ = accept(self.hub, adapter, headers, body)
            await self.redis.execute_command(*rawlog.xadd_args(self.hub, raw))
        except TongdaiError as exc:
            extra = ([(b"retry-after", str(exc.retry_after_s).encode())]
                     if isinstance(exc, StoreUnavailable) else [])
            metrics.webhook(adapter.channel_id, exc.http_status)
            await _respond(send, exc.http_status, orjson.dumps(exc.to_json()), extra)
            return True
        except redis.RedisError as exc:
            unavailable = StoreUnavailable.from_redis(exc)
            if unavailable is None:
                raise
            metrics.webhook(adapter.channel_id, 503)
            await _respond(send, 503, orjson.dumps(unavailable.to_json()),
                           [(b"retry-after", str(unavailable.retry_after_s).encode())])
            return True
        metrics.webhook(adapter.channel_id, 200)
        await _respond(send, 200, b"ok", content_type=b"text/plain; charset=utf-8")
        return True


async def _respond(send, status: int, body: bytes, extra=(),
                   content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send, hub: Hub, role: str, on_shutdown=None) -> None:
    """Start-up: name the process and look at its config file in a thread (no request
    waits for a reload, core/config_watch.py); shut-down: stop both."""
    stop = threading.Event()
    while (await receive())["type"] != "lifespan.shutdown":
        hub.watch.start(role)
        hub.watch.in_background(stop)
        await send({"type": "lifespan.startup.complete"})
    stop.set()
    hub.watch.forget()
    if on_shutdown is not None:
        await on_shutdown()
    await send({"type": "lifespan.shutdown.complete"})


def _count_refused(fast: Webhooks | None, scope: dict, status: int) -> None:
    """A platform's delivery refused before it reached a webhook handler (its body)."""
    if fast is not None and scope["method"] == "POST":
        channel = scope["path"][len("/webhooks/"):]
        metrics.webhook(channel if channel in fast.hub.adapters else "(unknown)", status)


async def _through(target: WSGIMiddleware, scope: dict, receive, send,
                   fast: Webhooks | None = None) -> None:
    """Read the body here, then answer a webhook on the loop (``fast``) or hand the request to
    ``target``'s threads."""
    try:
        body = await _read_body(scope, receive)
    except TimeoutError:
        _count_refused(fast, scope, 408)
        await _answer(send, 408, "RequestTimeout",
                      f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s")
        return
    except _BodyError as exc:
        _count_refused(fast, scope, exc.status)
        await _answer(send, exc.status, exc.code, str(exc))
        return
    if fast is not None and await fast(scope, body, send):
        return
    await target(scope, _replay(body, receive), send)


def create(hub: Hub | None = None, heartbeat_s: float | None = None):
    """The ASGI app (``uvicorn tongdai.webhooks.asgi:create --factory``)."""
    flask_app = create_app(hub)
    h = hub_of(flask_app)
    platforms = WSGIMiddleware(flask_app, workers=WEBHOOK_THREADS)
    agents = WSGIMiddleware(flask_app, workers=AGENT_THREADS)
    url = redis_url()
    if url is None:
        raise RuntimeError("no Redis to talk to: set REDIS_URL or start `tongdai up`")
    fanout = Fanout(h, url)
    webhooks = Webhooks(h, url)
    stream_opts = {"heartbeat_s": heartbeat_s} if heartbeat_s else {}

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, h, "web", fanout.close)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == STREAM_PATH and scope["method"] == "GET":
            await serve(fanout, scope, receive, send, **stream_opts)
            return
        if path.startswith("/webhooks/"):
            await _through(platforms, scope, receive, send, webhooks)
        else:
            await _through(agents, scope, receive, send)

    app.fanout = fanout  # for tests and the benchmark: how many consoles are listening
    return app


def create_inbound(hub: Hub | None = None):
    """The platforms' own server (``uvicorn tongdai.webhooks.asgi:create_inbound --factory``):
    ``/webhooks/...`` and ``/healthz``, nothing of the agents'."""
    flask_app = create_app(hub)
    platforms = WSGIMiddleware(flask_app, workers=WEBHOOK_THREADS)
    url = redis_url()
    if url is None:
        raise RuntimeError("no Redis to talk to: set REDIS_URL or start `tongdai up`")
    webhooks = Webhooks(hub_of(flask_app), url)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, hub_of(flask_app), "inbound")
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if not (path.startswith("/webhooks/") or path == "/healthz"):
            await _answer(send, 404, "NotFound", "this port serves the platforms' webhooks "
                                                 "only; the console and the API are on the "
                                                 "web port")
            return
        await _through(platforms, scope, receive, send,
                       webhooks if path.startswith("/webhooks/") else None)

    return app
