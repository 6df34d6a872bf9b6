"""A local stand-in for the Telegram Bot API, served over real HTTP.

Tests point an adapter's ``api_base`` at it and read back what was sent::

    with FakeTelegramAPI(token) as fake:
        adapter = TelegramAdapter("tg", settings(api_base=fake.base_url))
        fake.fail_next("sendMessage", 429, retry_after=3)

Forum supergroups (the staff group) are declared with ``make_forum(chat_id)``; then
``createForumTopic`` / ``editForumTopic`` / ``closeForumTopic`` / ``reopenForumTopic`` /
``deleteForumTopic`` work on them, and ``sendMessage`` with ``message_thread_id`` checks the
topic like Telegram does ("message thread not found", "TOPIC_CLOSED"). Without
``message_thread_id`` any chat id is accepted, as before.

Files (Bot API getFile, sendPhoto, sendDocument; core.telegram.org/bots/api): ``add_file``
registers what a user sent; ``getFile`` answers its ``file_path`` (400 "invalid file_id",
"file is too big" over 20 MB), ``GET /file/bot<token>/<file_path>`` serves the bytes; uploads
come as multipart/form-data (``UploadedFile`` in the params) and become files too. Fail a
download with ``fail_next("<download>", 502)``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer, UploadedFile

DEFAULT_TOKEN = "123456789:AAHfakeTokenForTestsOnly-abcdefghijk"
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
TOPIC_METHODS = frozenset({"createForumTopic", "editForumTopic", "closeForumTopic",
                           "reopenForumTopic", "deleteForumTopic"})


class FakeTelegramAPI(LocalHTTPServer):
    """Answers ``/bot<token>/<method>`` like the Bot API; scriptable failures."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._sent: list[tuple[str, dict[str, Any]]] = []
        self._failures: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._next_message_id = 1
        # forum supergroups: chat id -> topic id -> {"name", "closed"}
        self._forums: dict[int, dict[int, dict[str, Any]]] = {}
        self._stamps: list[tuple[str, float, dict[str, Any]]] = []
        self._sent_stamps: list[tuple[str, float, dict[str, Any]]] = []
        # files the bot may download (getFile): file_id -> (file_path, bytes)
        self._files: dict[str, tuple[str, bytes]] = {}
        # Seconds between acting on a call and answering it: set it above the client's timeout
        # for a platform that sends what it was asked to but answers too late.
        self.answer_delay = 0.0

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

    def calls_at(self, method: str = "sendMessage") -> list[tuple[float, dict[str, Any]]]:
        """(wall-clock time it arrived, params) of every call of ``method``, in order."""
        with self._lock:
            return [(t, params) for m, t, params in self._stamps if m == method]

    def sent_at(self, method: str = "sendMessage") -> list[tuple[float, dict[str, Any]]]:
        """(wall-clock time it arrived, params) of the successful calls of ``method``."""
        with self._lock:
            return [(t, params) for m, t, params in self._sent_stamps if m == method]

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """The params of the successful calls of ``method``."""
        with self._lock:
            return [params for m, params in self._sent if m == method]

    def add_file(self, data: bytes, file_path: str = "photos/file_0.jpg",
                 file_id: str | None = None) -> str:
        """A file a user sent the bot: ``getFile`` answers for its ``file_id`` (returned) and
        ``/file/bot<token>/<file_path>`` serves its bytes."""
        with self._lock:
            file_id = file_id or f"AgACAgUAAxkBAAI{len(self._files):04d}fake"
            self._files[file_id] = (file_path, data)
        return file_id

    def downloads(self) -> list[str]:
        """The file paths downloaded, in order."""
        with self._lock:
            return [p["file_path"] for m, p in self._calls if m == "<download>"]

    def download(self, token: str, file_path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) of ``GET /file/bot<token>/<file_path>``."""
        with self._lock:
            self._calls.append(("<download>", {"file_path": file_path}))
            queued = self._failures.get("<download>")
            if queued:
                status, body = queued.popleft()
                return status, orjson.dumps(body), "application/json"
            found = next((d for p, d in self._files.values() if p == file_path), None)
        if token != self.token or found is None:
            return 404, orjson.dumps({"ok": False, "error_code": 404,
                                      "description": "Not Found"}), "application/json"
        return 200, found, "application/octet-stream"

    def make_forum(self, chat_id: int) -> None:
        """Declare ``chat_id`` a supergroup with topics enabled (the bot an admin there)."""
        with self._lock:
            self._forums.setdefault(int(chat_id), {})

    def topics(self, chat_id: int) -> dict[int, dict[str, Any]]:
        """The forum's topics: thread id -> {"name", "closed"}."""
        with self._lock:
            return {t: dict(v) for t, v in self._forums.get(int(chat_id), {}).items()}

    def posts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        """Texts sent to ``chat_id`` (into topic ``thread_id`` when given), in order."""
        return [p.get("text") or p.get("caption") or "" for p in self.sent()
                if str(p.get("chat_id")) == str(chat_id)
                and (thread_id is None or p.get("message_thread_id") == thread_id)]

    # -- answering ----------------------------------------------------------------------------
    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict]:
        """The (status, JSON body) the real API would give, give or take."""
        with self._lock:
            self._calls.append((method, params))
            self._stamps.append((method, time.time(), params))
            if token != self.token:
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            queued = self._failures.get(method)
            if queued:
                return queued.popleft()
            result = self._result(method, params)
            if result is None:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            if isinstance(result, _Failure):
                return result
            self._sent.append((method, params))
            self._sent_stamps.append(self._stamps[-1])
            return 200, {"ok": True, "result": result} | (
                {"description": "Webhook was set"} if method == "setWebhook" else {}
            )

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method in TOPIC_METHODS:
            return self._topic(method, params)
        if (method in SEND_METHODS and params.get("message_thread_id") is not None
                and (error := self._thread_error(params))):
            return error
        if method in SEND_METHODS and (error := _markup_error(params.get("reply_markup"))):
            return error
        if method == "getFile":  # Bot API File; bots download up to 20 MB
            found = self._files.get(str(params.get("file_id") or ""))
            if found is None:
                return _bad("Bad Request: invalid file_id")
            if len(found[1]) > 20 * 2**20:
                return _bad("Bad Request: file is too big")
            return {"file_id": params["file_id"], "file_unique_id": "AQAD" + params["file_id"][-6:],
                    "file_size": len(found[1]), "file_path": found[0]}
        if method in ("sendPhoto", "sendDocument"):
            field = "photo" if method == "sendPhoto" else "document"
            if not params.get(field):
                return _bad(f"Bad Request: there is no {field} in the request")
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
            forum = _int(chat_id) in self._forums
            if forum:
                result["chat"].update(type="supergroup", is_forum=True)
            if forum and params.get("message_thread_id") is not None:
                result.update(message_thread_id=int(params["message_thread_id"]),
                              is_topic_message=True)
            if "text" in params:
                result["text"] = params["text"]
            if "caption" in params:
                result["caption"] = params["caption"]
            upload = params.get("photo") or params.get("document")
            if isinstance(upload, UploadedFile):  # stored: the bot may getFile it later
                fid = f"BQACAgUAAxkDAAI{len(self._files):04d}sent"
                folder = "photos" if "photo" in params else "documents"
                self._files[fid] = (f"{folder}/file_{len(self._files)}", upload.data)
                if "photo" in params:
                    result["photo"] = [{"file_id": fid, "file_unique_id": "AQAD" + fid[-8:],
                                        "file_size": len(upload.data), "width": 1,
                                        "height": 1}]
                else:
                    result["document"] = {"file_id": fid, "file_unique_id": "AgAD" + fid[-8:],
                                          "file_name": upload.filename,
                                          "mime_type": upload.content_type,
                                          "file_size": len(upload.data)}
            return result
        if method in ("setWebhook", "deleteWebhook"):
            self.webhook_url = params.get("url", "") if method == "setWebhook" else ""
            return True
        if method == "answerCallbackQuery":
            return True
        if method == "getMe":
            return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Fake",
                    "username": "fake_shop_bot"}
        if method == "getWebhookInfo":  # the Bot API's WebhookInfo (no url: not set)
            return {"url": getattr(self, "webhook_url", ""), "has_custom_certificate": False,
                    "pending_update_count": 0}
        return None

    # -- forum topics (Bot API 6.3+) ------------------------------------------------------------
    def _thread_error(self, params: dict[str, Any]) -> _Failure | None:
        """What Telegram says about a ``message_thread_id`` that names no open topic."""
        topics = self._forums.get(_int(params.get("chat_id")))
        topic = (topics or {}).get(_int(params["message_thread_id"]))
        if topic is None:  # deleted topic, or a chat without topics
            return _bad("Bad Request: message thread not found")
        if topic["closed"]:
            return _bad("Bad Request: TOPIC_CLOSED")
        return None

    def _topic(self, method: str, params: dict[str, Any]) -> Any:
        topics = self._forums.get(_int(params.get("chat_id")))
        if topics is None:
            return _bad("Bad Request: chat not found" if params.get("chat_id") is None
                        else "Bad Request: the chat is not a forum")
        if method == "createForumTopic":
            name = str(params.get("name") or "")
            if not 1 <= len(name) <= 128:  # wording not verified against the real API
                return _bad("Bad Request: invalid forum topic name (1-128 characters)")
            # a topic's id is the id of the service message that opened it
            thread, self._next_message_id = self._next_message_id, self._next_message_id + 1
            topics[thread] = {"name": name, "closed": False}
            return {"message_thread_id": thread, "name": name, "icon_color": 7322096}
        topic = topics.get(_int(params.get("message_thread_id")))
        if topic is None:
            return _bad("Bad Request: message thread not found")
        if method == "deleteForumTopic":
            del topics[_int(params["message_thread_id"])]
        elif method == "editForumTopic":
            if params.get("name"):
                topic["name"] = str(params["name"])
        else:
            closed = method == "closeForumTopic"
            if topic["closed"] == closed:
                return _bad("Bad Request: TOPIC_NOT_MODIFIED")
            topic["closed"] = closed
        return True


class _Failure(tuple):
    """(status, body) of an error answer, told apart from a method's result."""


def _bad(description: str, status: int = 400) -> _Failure:
    return _Failure((status, {"ok": False, "error_code": status, "description": description}))


def _markup_error(markup: Any) -> _Failure | None:
    """What the Bot API says about an inline keyboard it refuses: each button needs a text and
    ``callback_data`` of 1-64 bytes (InlineKeyboardButton)."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return _bad("Bad Request: can't parse reply keyboard markup JSON object")
    for button in (b for r in rows for b in r):
        if not str(button.get("text") or ""):
            return _bad("Bad Request: text buttons are unallowed in the inline keyboard")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            return _bad("Bad Request: BUTTON_DATA_INVALID")
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _handler_for(fake: FakeTelegramAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def serve(self, body: bytes) -> None:
            path, query, form = self.request_params(body)
            parts = path.strip("/").split("/")
            if len(parts) > 2 and parts[0] == "file" and parts[1].startswith("bot"):
                status, data, ctype = fake.download(parts[1][3:], "/".join(parts[2:]))
                self.reply(status, data, ctype)
                return
            if len(parts) != 2 or not parts[0].startswith("bot"):
                status, answer = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            else:
                status, answer = fake.answer(parts[0][3:], parts[1], query | form)
            if fake.answer_delay:
                time.sleep(fake.answer_delay)
            try:
                self.reply(status, orjson.dumps(answer))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: what the delay is for

    return Handler
