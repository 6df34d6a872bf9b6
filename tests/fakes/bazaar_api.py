""""Bazaar Chat": a made-up marketplace chat platform that exists only in the tests, to show
that a platform is added by configuration alone (``adapter: webhook``).

Its conventions differ from LINE's on purpose: events under ``deliveries[]`` with dotted kinds
(``message.created``, ``message.edited``, ``message.removed``, ``typing``), numeric user ids,
ISO 8601 times, conversation refs as reply addresses, a hex SHA-512 signature prefixed ``v1=``
over ``<timestamp header>.<body>``, and a send API that is ``PUT /v3/conversations/{ref}/
messages`` with an ``X-Api-Key`` header, answering 201 ``{"data": {"message": {"ref"}}}``.
When busy it answers 200 ``{"status": "queued_full", "retry_in": N}`` (retry later), and it
also gives real 429s (with Retry-After) and 503s.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

API_KEY = "bz_live_key_for_tests_0123456789"
SIGNING_SECRET = "bazaar-signing-secret"

# The channel, as an admin would write it: no Python (used by the tests' config).
CHANNEL_YAML = """
  - id: bazaar
    adapter: webhook
    settings:
      platform: Bazaar Chat
      secrets:
        signing: "{signing}"
        api_key: "{api_key}"
      verify:
        kind: hmac
        header: X-Bazaar-Signature
        algorithm: sha512
        encoding: hex
        prefix: "v1="
        secret: signing
        signed: "{{header.X-Bazaar-Timestamp}}.{{body}}"
      events:
        list: deliveries
        kind: event
        kinds:
          message.created: message
          message.edited: edit
          message.removed: delete
          typing: ignore
        id: join('/', [conversation.ref, to_string(seq)])
        customer_id: author.uid
        address: conversation.ref
        message_id: message.ref
        text: message.content.text
        attachments: "message.files[].{{kind: 'file', url: href, mime: mime, size: bytes, name: title}}"
        timestamp: message.updated || message.created
        timestamp_unit: iso
        display_name: author.nick
        reply_to: message.reply_to
        target_id: message.ref
      send:
        url: "{base}/v3/conversations/{{address}}/messages"
        method: PUT
        headers:
          X-Api-Key: "{{secrets.api_key}}"
        body:
          content: {{text: "{{text}}"}}
          in_reply_to: "{{reply_to}}"
          client_ref: "{{idempotency_key}}"
        message_id: data.message.ref
        retry_when: "status == 'queued_full'"
        retry_after: retry_in
        error: error.detail
        rate_limit: {{count: 5, per: 1s, scope: address}}
      reply_window: 72h
"""


def channel_yaml(base: str) -> str:
    """The Bazaar channel pointed at a fake server's ``base`` URL."""
    return CHANNEL_YAML.format(signing=SIGNING_SECRET, api_key=API_KEY, base=base)


def sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """The headers Bazaar Chat sends with a webhook body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha512)
    return {"Content-Type": "application/json", "X-Bazaar-Timestamp": timestamp,
            "X-Bazaar-Signature": "v1=" + digest.hexdigest()}


class FakeBazaarAPI(LocalHTTPServer):
    """``PUT /v3/conversations/{ref}/messages``; scriptable busy answers, 429s and 5xx."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self._failures: deque[tuple[int, dict[str, Any], dict[str, str]]] = deque()
        self.received: list[tuple[str, dict[str, Any]]] = []  # (conversation ref, body) sent
        self.calls = 0
        self._n = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def busy_next(self, retry_in: int = 0) -> None:
        self._script(200, {"status": "queued_full", "retry_in": retry_in})

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._script(status, {"error": {"detail": f"upstream said {status}"}}, headers)

    def _script(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
                ) -> None:
        with self._lock:
            self._failures.append((status, body, headers or {}))

    def answer(self, method: str, path: str, key: str | None, body: dict[str, Any]
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.calls += 1
            if key != self.api_key:
                return 401, {"error": {"detail": "unknown api key"}}, {}
            parts = path.strip("/").split("/")
            if method != "PUT" or len(parts) != 4 or parts[:2] != ["v3", "conversations"] \
                    or parts[3] != "messages":
                return 404, {"error": {"detail": "no such route"}}, {}
            if self._failures:
                return self._failures.popleft()
            if not (body.get("content") or {}).get("text"):
                return 422, {"error": {"detail": "content.text is required"}}, {}
            self._n += 1
            self.received.append((parts[2], body))
            return 201, {"data": {"message": {"ref": f"msg_srv_{self._n}"}}}, {}


def _handler_for(fake: FakeBazaarAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def do_PUT(self) -> None:
            self.serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def serve(self, body: bytes) -> None:
            path, _query, form = self.request_params(body)
            status, answer, extra = fake.answer(self.command, path,
                                                self.headers.get("X-Api-Key"), form)
            self.reply(status, orjson.dumps(answer), headers=extra)

    return Handler
