"""MiniChat's send API (the made-up widget of examples/tongdai-adapter-minichat), over real
HTTP: ``POST /v1/visitors/{id}/messages`` with a Bearer key and an ``Idempotency-Key`` it
honours (a repeat gets the first answer, nothing sent twice); a wrong key gets 401."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

API_KEY = "mc_test_0123456789abcdef"
SIGNING_SECRET = "whsec-0123456789abcdef"


class FakeMiniChatAPI(LocalHTTPServer):
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.messages: list[tuple[str, str]] = []  # (visitor, text) as received, once each
        self._seen: dict[str, dict] = {}
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(FakeHandler):
            def serve(self, body: bytes) -> None:
                path, _q, form = self.request_params(body)
                parts = path.strip("/").split("/")
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self.reply(401, orjson.dumps({"error": "invalid api key"}))
                if self.command != "POST" or len(parts) != 4 or parts[:2] != ["v1", "visitors"]:
                    return self.reply(404, orjson.dumps({"error": "not found"}))
                key = self.headers.get("Idempotency-Key", "")
                with fake._lock:
                    if key not in fake._seen:
                        fake.messages.append((parts[2], form.get("text", "")))
                        fake._seen[key] = {"id": f"msg_{len(fake.messages)}"}
                    answer = fake._seen[key]
                self.reply(201, orjson.dumps(answer))

        return Handler
