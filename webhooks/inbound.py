"""Inbound webhooks: verify, append the raw request to the raw log, answer 200. Nothing else.

No parsing beyond the adapter's cheap well-formedness check, no platform calls: the request
path must stay as fast as a hello-world, and an event is acknowledged only once it is durably
in Redis.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from core import rawlog
from core.errors import NotFound
from core.models import RawEvent

bp = Blueprint("inbound", __name__)


def _adapter(channel_id: str):
    hub = current_app.extensions["tongdai"]
    adapter = hub.adapters.get(channel_id)
    if adapter is None:
        raise NotFound(f"no channel {channel_id!r}")
    return hub, adapter


@bp.post("/webhooks/<channel_id>")
def receive(channel_id: str) -> Response:
    """A platform delivers events for one channel instance."""
    hub, adapter = _adapter(channel_id)
    body = request.get_data(cache=False)
    adapter.verify(request.headers, body)  # SignatureError → 401, nothing stored
    adapter.check_body(body)  # PayloadError → 400, nothing stored
    headers = {h: request.headers[h] for h in adapter.kept_headers if h in request.headers}
    rawlog.append(hub, RawEvent(channel_id, body, headers, rawlog.now_ms()))
    return Response("ok", 200, mimetype="text/plain")


@bp.get("/webhooks/<channel_id>")
def handshake(channel_id: str) -> Response:
    """A platform's subscription handshake (e.g. Meta's hub.challenge), where it has one."""
    _, adapter = _adapter(channel_id)
    answer = adapter.handshake(request.args)
    if answer is None:
        return Response("this channel has no GET handshake", 405, mimetype="text/plain")
    return Response(answer, 200, mimetype="text/plain")
