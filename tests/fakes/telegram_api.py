"""A local stand-in for the Telegram Bot API, served over real HTTP.

Tests point an adapter's ``api_base`` at it and read back what was sent::

    with FakeTelegramAPI(token) as fake:
        adapter = TelegramAdapter("tg", settings(api_base=fake.base_url))
        fake.fail_next("sendMessage", 429, retry_after=3)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

DEFAULT_TOKEN = "123456789:AAHfakeTokenForTestsOnly-abcdefghijk"
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})


class FakeTelegramAPI(LocalHTTPServer):
    """Answers ``/bot<token>/<method>`` like the Bot API; scriptable failures."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._sent: list[tuple[str, dict[str, Any]]] = []
        self._failures: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._next_message_id = 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- scripting and inspection -------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        status: int,
        error_code: int | None = None,
        description: str = "",
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail with this HTTP status and Bot API error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": error_code or status,
            "description": description or f"Error {status}",
        }
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        with self._lock:
            self._failures.setdefault(method, deque()).append((status, body))

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every request received, as (method, params), in order."""
        with self._lock:
            return list(self._calls)

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """The params of the successful calls of ``method``."""
        with self._lock:
            return [params for m, params in self._sent if m == method]

    # -- answering ----------------------------------------------------------------------------
    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict]:
        """The (status, JSON body) the real API would give, give or take."""
        with self._lock:
            self._calls.append((method, params))
            if token != self.token:
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            queued = self._failures.get(method)
            if queued:
                return queued.popleft()
            result = self._result(method, params)
            if result is None:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            self._sent.append((method, params))
            return 200, {"ok": True, "result": result} | (
                {"description": "Webhook was set"} if method == "setWebhook" else {}
            )

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method in SEND_METHODS:
            message_id, self._next_message_id = self._next_message_id, self._next_message_id + 1
            chat_id = params.get("chat_id")
            result = {
                "message_id": message_id,
                "chat": {
                    "id": int(chat_id) if str(chat_id).lstrip("-").isdigit() else chat_id,
                    "type": "private",
                },
                "date": int(time.time()),
            }
            if "text" in params:
                result["text"] = params["text"]
            if "caption" in params:
                result["caption"] = params["caption"]
            return result
        if method in ("setWebhook", "deleteWebhook", "answerCallbackQuery"):
            return True
        if method == "getMe":
            return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Fake"}
        return None


def _handler_for(fake: FakeTelegramAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def serve(self, body: bytes) -> None:
            path, query, form = self.request_params(body)
            parts = path.strip("/").split("/")
            if len(parts) != 2 or not parts[0].startswith("bot"):
                status, answer = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            else:
                status, answer = fake.answer(parts[0][3:], parts[1], query | form)
            self.reply(status, orjson.dumps(answer))

    return Handler
