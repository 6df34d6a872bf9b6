"""A local stand-in for Zalo's OA OpenAPI and OAuth v4 server, over real HTTP.

One base URL serves both, so tests set ``api_base`` and ``oauth_base`` to it::

    with FakeZaloAPI() as fake:
        adapter = ZaloAdapter("zalo", settings(api_base=fake.base_url, oauth_base=fake.base_url))
        fake.expire_access_token()          # the next call answers -216, a refresh follows
        fake.fail_next(-230, "User has not interacted with the OA in the past 7 days")

Like Zalo, it answers errors inside HTTP 200 (``{"error": -216, ...}``), accepts only the
current access token, and honours each refresh token once: a second use of a burnt one fails
and is counted in ``burnt_refresh_uses``, which is how a double-refresh race shows up.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer, UploadedFile

APP_ID = "3608465248940903967"
APP_SECRET = "fake-app-secret-Xq9"
ACCESS_TOKEN = "AT-initial-fake-access-token"
REFRESH_TOKEN = "RT-initial-fake-refresh-token"
CS_PATH = "/v3.0/oa/message/cs"
ANON_PATH = "/v2.0/oa/message"  # replies to anonymous users (anonymous_id + conversation_id)
PROFILE_PATH = "/v3.0/oa/user/detail"
OA_INFO_PATH = "/v2.0/oa/getoa"
OA_ID = "388613280878808645"
TOKEN_PATH = "/v4/oa/access_token"
# Uploads (OA API "upload image/gif/file": multipart ``file``; JPG/PNG 1 MB, GIF 5 MB answer
# data.attachment_id; PDF/DOC/DOCX 5 MB answer data.token). The refusal's code and wording
# are the fake's own (-201 like its other invalid parameters), not verified.
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
UPLOADS = {"/v2.0/oa/upload/image": ({"image/jpeg", "image/png"}, 2**20, "attachment_id"),
           "/v2.0/oa/upload/gif": ({"image/gif"}, 5 * 2**20, "attachment_id"),
           "/v2.0/oa/upload/file": ({"application/pdf", "application/msword", DOCX}, 5 * 2**20,
                                    "token")}
# Answers shaped as Zalo documents them (docs.zaloplatforms.com, OA API error table; the
# -14xxx OAuth family is undocumented: -14014 is the code community clients report for a
# burnt refresh token; the adapter does not depend on the number).
INVALID_TOKEN = {"error": -216, "message": "Access token is invalid"}
BURNT_REFRESH = {
    "error": -14014,
    "error_name": "Invalid refresh token",
    "error_reason": "refresh_token is invalid or expired",
    "error_description": "",
}


class FakeZaloAPI(LocalHTTPServer):
    """Answers the message (consultation and anonymous), user-detail and token endpoints;
    scriptable failures."""

    def __init__(
        self,
        app_id: str = APP_ID,
        app_secret: str = APP_SECRET,
        access_token: str = ACCESS_TOKEN,
        refresh_token: str = REFRESH_TOKEN,
    ) -> None:
        self.app_id, self.app_secret = app_id, app_secret
        self.access_token: str | None = access_token
        self.refresh_token: str | None = refresh_token
        self._lock = threading.Lock()
        self._burnt: set[str] = set()
        self._codes: set[str] = set()
        self._calls: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self._sent: list[dict[str, Any]] = []
        self._failures: dict[str, deque[list[Any]]] = {}  # [calls to let through, status, body]
        self.users: dict[str, dict[str, Any]] = {}
        self.refreshes = 0  # successful rotations
        self.burnt_refresh_uses = 0  # refresh tokens presented after they were spent
        self._serial = 0
        self.uploads: list[tuple[str, Any, str]] = []  # (path, UploadedFile, id or token)
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self.cdn_downloads: list[str] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- scripting and inspection -------------------------------------------------------------
    def expire_access_token(self) -> None:
        """The current access token stops working (as after its 25 h); refresh still does."""
        with self._lock:
            self.access_token = None

    def fail_next(self, code: int, message: str = "", path: str = CS_PATH, after: int = 0) -> None:
        """The next call of ``path`` (after ``after`` successful ones) answers HTTP 200 with
        this Zalo error."""
        with self._lock:
            self._failures.setdefault(path, deque()).append(
                [after, 200, {"error": code, "message": message or f"Error {code}"}]
            )

    def fail_next_http(self, status: int, path: str = CS_PATH, after: int = 0) -> None:
        """The next call of ``path`` answers this HTTP status with an HTML page, like a proxy."""
        with self._lock:
            self._failures.setdefault(path, deque()).append([after, status, None])

    def issue_code(self) -> str:
        """An authorization code, as Zalo's consent page hands the callback (single use)."""
        with self._lock:
            code = "code-" + secrets.token_hex(6)
            self._codes.add(code)
            return code

    def add_user(self, user_id: str, detail: dict[str, Any]) -> None:
        """What ``/v3.0/oa/user/detail`` answers for ``user_id`` (its ``data`` object)."""
        with self._lock:
            self.users[user_id] = detail

    @property
    def calls(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """Every request: (path, {access_token, secret_key} headers present, params/body)."""
        with self._lock:
            return list(self._calls)

    def sent(self) -> list[dict[str, Any]]:
        """The bodies of the successful ``message/cs`` and anonymous ``/v2.0/oa/message`` calls,
        in order (an anonymous one's recipient is ``{anonymous_id, conversation_id}``)."""
        with self._lock:
            return list(self._sent)

    # -- answering ----------------------------------------------------------------------------
    def answer(self, path: str, headers: dict[str, str], params: dict[str, Any]) -> tuple[int, Any]:
        """The (status, JSON body or None for an HTML page) Zalo would give, give or take."""
        with self._lock:
            self._calls.append((path, headers, params))
            if path == TOKEN_PATH:
                return 200, self._token(headers, params)
            if path not in (CS_PATH, ANON_PATH, PROFILE_PATH, OA_INFO_PATH, *UPLOADS):
                return 404, {"error": 404, "message": "Not Found"}
            if self.access_token is None or headers.get("access_token") != self.access_token:
                return 200, INVALID_TOKEN
            if queued := self._failures.get(path):
                if queued[0][0] > 0:
                    queued[0][0] -= 1
                else:
                    _, status, body = queued.popleft()
                    return status, body
            if path == PROFILE_PATH:
                return 200, self._profile(params)
            if path == OA_INFO_PATH:  # the OA the token belongs to
                return 200, {"error": 0, "message": "Success", "data": {
                    "oa_id": OA_ID, "name": "Shop Test OA", "is_verified": True}}
            if path == ANON_PATH:
                return 200, self._send_anonymous(params)
            if path in UPLOADS:
                return 200, self._upload(path, params.get("file"))
            return 200, self._send(params)

    def _next(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial}-{secrets.token_hex(4)}"

    def _token(self, headers: dict[str, str], form: dict[str, Any]) -> dict[str, Any]:
        if form.get("app_id") != self.app_id:
            return {"error": -14002, "error_name": "Invalid appId", "error_reason": ""}
        if headers.get("secret_key") != self.app_secret:
            # Not a documented code: the fake's own, for a wrong secret_key header.
            return {"error": -14001, "error_name": "Invalid secret key", "error_reason": ""}
        grant = form.get("grant_type")
        if grant == "refresh_token":
            used = form.get("refresh_token", "")
            if used != self.refresh_token or used in self._burnt:
                self.burnt_refresh_uses += used in self._burnt
                return BURNT_REFRESH
            self._burnt.add(used)
            self.refreshes += 1
        elif grant == "authorization_code":
            code = form.get("code", "")
            if code not in self._codes:
                return {
                    "error": -14019,
                    "error_name": "Invalid authorization code",
                    "error_reason": "code is invalid, used or expired",
                }
            self._codes.discard(code)
            if self.refresh_token:
                self._burnt.add(self.refresh_token)
        else:
            return {"error": -14000, "error_name": "Invalid grant_type", "error_reason": ""}
        # Each new pair replaces the last one: only it works from now on.
        self.access_token, self.refresh_token = self._next("AT"), self._next("RT")
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_in": "90000",
        }

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        user = (body.get("recipient") or {}).get("user_id")
        message = body.get("message") or {}
        if not user:
            return {"error": -201, "message": "user_id is invalid!"}
        error = _message_error(message)
        if error:
            return error
        self._sent.append(body)
        message_id = secrets.token_hex(10)
        return {
            "error": 0,
            "message": "Success",
            "data": {
                "message_id": message_id,
                "user_id": user,
                "quota": {"quota_type": "reply", "remain": "7", "total": "8"},
                "sent_time": str(int(time.time() * 1000)),
            },
        }

    def _send_anonymous(self, body: dict[str, Any]) -> dict[str, Any]:
        # Zalo documents both ids as required; the answer echoes them with the message id.
        recipient = body.get("recipient") or {}
        for key in ("anonymous_id", "conversation_id"):
            if not recipient.get(key):
                return {"error": -201, "message": f"{key} is invalid!"}
        error = _message_error(body.get("message") or {})
        if error:
            return error
        self._sent.append(body)
        return {
            "error": 0,
            "message": "Success",
            "data": {
                "message_id": secrets.token_hex(10),
                "anonymous_id": recipient["anonymous_id"],
                "conversation_id": recipient["conversation_id"],
            },
        }

    def _upload(self, path: str, file: Any) -> dict[str, Any]:
        types, limit, key = UPLOADS[path]
        if not isinstance(file, UploadedFile) or file.content_type not in types:
            return {"error": -201, "message": "file is invalid!"}
        if len(file.data) > limit:
            return {"error": -201, "message": "file size is invalid!"}
        handle = self._next("att" if key == "attachment_id" else "tok")
        self.uploads.append((path, file, handle))
        return {"error": 0, "message": "Success", "data": {key: handle}}

    def add_cdn_file(self, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
        """Serve ``data`` at a CDN-like URL (returned), as a webhook's payload.url."""
        with self._lock:
            self._cdn[name] = (data, content_type)
        return f"{self.base_url}/cdn/{name}"

    def _profile(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            user_id = orjson.loads(params.get("data") or "{}").get("user_id")
        except (orjson.JSONDecodeError, AttributeError):
            user_id = None
        if user_id not in self.users:
            return {"error": -201, "message": "user_id is invalid!"}
        return {"error": 0, "message": "Success", "data": self.users[user_id]}


def _message_error(message: dict[str, Any]) -> dict[str, Any] | None:
    if not message.get("text") and not message.get("attachment"):
        return {"error": -201, "message": "message is invalid!"}
    if len(message.get("text") or "") > 2000:
        return {"error": -201, "message": "text is invalid!"}
    return None


def _handler_for(fake: FakeZaloAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def serve(self, body: bytes) -> None:
            path, query, form = self.request_params(body)
            if path.startswith("/cdn/"):
                found = fake._cdn.get(path.removeprefix("/cdn/"))
                fake.cdn_downloads.append(path.removeprefix("/cdn/"))
                if found is None:
                    self.reply(404, b"Not Found", "text/plain")
                else:
                    self.reply(200, *found)
                return
            headers = {
                h: self.headers[h]
                for h in ("access_token", "secret_key")
                if self.headers.get(h) is not None
            }
            status, answer = fake.answer(path, headers, query | form)
            if answer is None:
                self.reply(status, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            else:
                self.reply(status, orjson.dumps(answer))

    return Handler
