"""A local stand-in for the LINE Messaging API (push and profile), served over real HTTP.

It answers as https://developers.line.biz/en/reference/messaging-api/ describes:
``POST /v2/bot/message/push`` with a Bearer channel access token → 200
``{"sentMessages": [{"id", "quoteToken"}]}``; a bad token → 401; a body without ``to`` or with
0 or more than 5 messages → 400 ``{"message", "details"}``; ``X-Line-Retry-Key`` honoured (not
a UUID → 400; a key already accepted → 409 with the first answer's ``sentMessages`` and the
``x-line-accepted-request-id`` header); ``GET /v2/bot/profile/{userId}`` → displayName,
pictureUrl; ``GET /v2/bot/message/{messageId}/content`` (api-data.line.me) → the bytes a user
sent, with their Content-Type (``add_content``), 404 ``{"message": "Not found"}`` for content
LINE no longer keeps. ``fail_next(status)`` scripts a 429 ("The API rate limit has been exceeded") or a
5xx for the next push.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

ACCESS_TOKEN = "line-channel-access-token-for-tests"
CHANNEL_SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
_MESSAGES = {429: "The API rate limit has been exceeded. Try again later.",
             500: "Internal server error", 503: "Service unavailable"}


class FakeLINEAPI(LocalHTTPServer):
    """The push and profile endpoints of api.line.me, with scriptable failures."""

    def __init__(self, token: str = ACCESS_TOKEN,
                 profiles: dict[str, dict[str, str]] | None = None) -> None:
        self.token = token
        self.profiles = profiles or {}
        self._lock = threading.Lock()
        self._failures: deque[int] = deque()
        self._accepted: dict[str, list[dict[str, str]]] = {}
        self.pushes: list[dict[str, Any]] = []  # accepted push bodies, in order
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # every call
        self._next_id = 600000000000000001
        self.contents: dict[str, tuple[bytes, str]] = {}  # message id -> (bytes, type)

    def add_content(self, message_id: str, data: bytes, content_type: str) -> None:
        """What a user sent in message ``message_id`` (an image, audio, video or file)."""
        with self._lock:
            self.contents[message_id] = (data, content_type)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def fail_next(self, status: int) -> None:
        """The next push is answered with ``status`` (429, 500, 503...) and not sent."""
        with self._lock:
            self._failures.append(status)

    def answer(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]
               ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((path, headers, body))
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Authentication failed. Confirm that the access token "
                             "in the authorization header is valid."}, {}
            if method == "GET" and path.startswith("/v2/bot/profile/"):
                user = path.rsplit("/", 1)[1]
                if user not in self.profiles:
                    return 404, {"message": "Not found"}, {}
                return 200, {"userId": user, "language": "vi", **self.profiles[user]}, {}
            if method == "GET" and path.startswith("/v2/bot/message/") and path.endswith(
                    "/content"):
                found = self.contents.get(path.split("/")[4])
                if found is None:
                    return 404, {"message": "Not found"}, {}
                return 200, found, {}  # (bytes, content type): the handler sends them as is
            if method != "POST" or path != "/v2/bot/message/push":
                return 404, {"message": "Not found"}, {}
            return self._push(headers, body)

    def _push(self, headers: dict[str, str], body: dict[str, Any]
              ) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = headers.get("x-line-retry-key")
        if key is not None:
            try:
                uuid.UUID(key)
            except ValueError:
                return 400, {"message": "The value for the 'X-Line-Retry-Key' header is "
                             "invalid"}, {}
            if key in self._accepted:
                return 409, {"message": "The retry key is already accepted",
                             "sentMessages": self._accepted[key]}, {
                    "x-line-accepted-request-id": f"req-{key[:8]}"}
        if self._failures:
            status = self._failures.popleft()
            return status, {"message": _MESSAGES.get(status, f"error {status}")}, {}
        messages = body.get("messages")
        if not body.get("to") or not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return 400, {"message": "The request body has 1 error(s)", "details": [
                {"message": "must be specified", "property": "to"}]}, {}
        for m in messages:
            if m.get("type") == "text" and not m.get("text"):
                return 400, {"message": "The request body has 1 error(s)", "details": [
                    {"message": "must be specified", "property": "messages[0].text"}]}, {}
        sent = []
        for _ in messages:
            sent.append({"id": str(self._next_id), "quoteToken": f"qt{self._next_id}"})
            self._next_id += 1
        if key is not None:
            self._accepted[key] = sent
        self.pushes.append(body)
        return 200, {"sentMessages": sent}, {}


def _handler_for(fake: FakeLINEAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def serve(self, body: bytes) -> None:
            path, _query, form = self.request_params(body)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer, extra = fake.answer(self.command, path, headers, form)
            if isinstance(answer, tuple):  # a user's content
                self.reply(status, answer[0], content_type=answer[1], headers=extra)
                return
            self.reply(status, orjson.dumps(answer), headers=extra)

    return Handler
