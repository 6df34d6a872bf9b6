"""Inbound webhooks: verify, append the raw request to the raw log, answer 200. Nothing else.

No parsing beyond the adapter's cheap well-formedness check, no platform calls: the request
path must stay as fast as a hello-world, and an event is acknowledged only once it is durably
in Redis.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import redis
from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import EnvironHeaders

from tongdai.adapters.base import Adapter
from tongdai.core import clock, metrics
from tongdai.core.errors import (
    NotFound,
    PayloadError,
    SignatureError,
    StoreUnavailable,
    TongdaiError,
)
from tongdai.core.models import RawEvent
from tongdai.core.pipeline import rawlog

bp = Blueprint("inbound", __name__)


def _adapter(channel_id: str):
    hub = current_app.extensions["tongdai"]
    adapter = hub.adapters.get(channel_id)
    if adapter is None:
        raise NotFound(f"no channel {channel_id!r}")
    return hub, adapter


NONCE_TTL_S = 600  # longer than any platform's accepted timestamp age


def accept(hub, adapter: Adapter, headers: Mapping[str, str], body: bytes
           ) -> tuple[RawEvent, str | None]:
    """The raw event to store, once the request is authentic and well formed, and the key
    that marks its one-time token used (to set once the event is stored).

    ``SignatureError`` (→ 401) or ``PayloadError`` (→ 400) otherwise: nothing is stored.
    A request whose one-time token was seen before (a replayed signed request) is refused.
    """
    adapter.verify(headers, body)
    adapter.check_body(body)
    nonce = adapter.replay_nonce(headers, body)
    nonce_key = hub.keys.webhook_nonce(adapter.channel_id, nonce) if nonce else None
    if nonce_key and hub.redis.exists(nonce_key):
        raise SignatureError("this signed request was received before (its token is used)")
    kept = {h: headers[h] for h in adapter.kept_headers if h in headers}
    return RawEvent(adapter.channel_id, adapter.stored_body(headers, body), kept,
                    clock.now_ms()), nonce_key


def used(hub, nonce_key: str | None) -> None:
    """Mark a stored request's one-time token used. Set only after the event is stored: a
    failed write leaves the platform's retry welcome (a race of two copies is deduplicated)."""
    if nonce_key:
        hub.redis.set(nonce_key, 1, ex=NONCE_TTL_S)


@bp.post("/webhooks/<channel_id>")
@bp.post("/webhooks/<channel_id>/mime")  # Mailgun sends the raw mail to URLs ending in 'mime'
def receive(channel_id: str) -> Response:
    """A platform delivers events for one channel instance."""
    try:
        hub, adapter = _adapter(channel_id)
        raw, nonce_key = accept(hub, adapter, request.headers, request.get_data(cache=False))
        rawlog.append(hub, raw)
        used(hub, nonce_key)
    except Exception as exc:
        metrics.webhook("(unknown)" if isinstance(exc, NotFound) else channel_id,
                        refused_status(exc))
        raise
    metrics.webhook(channel_id, 200)
    return Response("ok", 200, mimetype="text/plain")


def refused_status(exc: BaseException) -> int:
    """The status a webhook's error is answered with (for the counters)."""
    if isinstance(exc, TongdaiError):
        return exc.http_status
    if isinstance(exc, redis.RedisError) and StoreUnavailable.from_redis(exc) is not None:
        return 503
    return getattr(exc, "code", None) or 500


@bp.get("/webhooks/<channel_id>")
def handshake(channel_id: str) -> Response:
    """A platform's subscription handshake (e.g. Meta's hub.challenge), where it has one."""
    _, adapter = _adapter(channel_id)
    answer = adapter.handshake(request.args)
    if answer is None:
        return Response("this channel has no GET handshake", 405, mimetype="text/plain")
    return Response(answer, 200, mimetype="text/plain")


class FastWebhooks:
    """WSGI layer serving ``POST /webhooks/<channel>`` before Flask's request machinery.

    The same steps as :func:`receive` (:func:`accept`, append, 200), minus Flask's per-request
    work, which costs as much as the rest of the ack together (``tongdai bench``). Anything
    unusual — unknown channel, no Content-Length, a body over the limit — goes to Flask, so
    behaviour and error bodies stay the same.
    """

    PREFIX = "/webhooks/"

    def __init__(self, wsgi_app, hub, max_body: int) -> None:
        self.wsgi_app = wsgi_app
        self.hub = hub
        self.max_body = max_body
        self.appender = rawlog.Appender(hub)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(self.PREFIX):
            return self.wsgi_app(environ, start_response)
        adapter = self.hub.adapters.get(path[len(self.PREFIX):])
        length = environ.get("CONTENT_LENGTH")
        if adapter is None or not length or not length.isdigit() or int(length) > self.max_body:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(int(length))
        try:
            if len(body) != int(length):  # the client stopped early: never store a torso
                raise PayloadError(f"the body ended after {len(body)} of the {length} bytes "
                                   "its Content-Length announced")
            raw, nonce_key = accept(self.hub, adapter, EnvironHeaders(environ), body)
            self.appender.append(raw)
            used(self.hub, nonce_key)
        except redis.RedisError as exc:
            unavailable = StoreUnavailable.from_redis(exc)
            if unavailable is None:
                raise
            metrics.webhook(adapter.channel_id, 503)
            return self._respond(start_response, 503, orjson.dumps(unavailable.to_json()),
                                 "application/json",
                                 [("Retry-After", str(unavailable.retry_after_s))])
        except TongdaiError as exc:
            metrics.webhook(adapter.channel_id, exc.http_status)
            return self._respond(start_response, exc.http_status, orjson.dumps(exc.to_json()),
                                 "application/json")
        metrics.webhook(adapter.channel_id, 200)
        return self._respond(start_response, 200, b"ok", "text/plain; charset=utf-8")

    @staticmethod
    def _respond(start_response, status: int, body: bytes, content_type: str,
                 extra: list[tuple[str, str]] = ()):
        reason = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
                  503: "SERVICE UNAVAILABLE"}
        start_response(f"{status} {reason.get(status, 'ERROR')}",
                       [("Content-Type", content_type), ("Content-Length", str(len(body))),
                        *extra])
        return [body]
