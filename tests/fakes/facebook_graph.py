"""A local stand-in for the Graph API's Messenger endpoints, served over real HTTP.

Tests point an adapter's ``graph_base`` at it (the base URL includes ``/v25.0``) and read back
what was sent::

    with FakeGraphAPI(token, app_secret) as fake:
        adapter = FacebookAdapter("fb", settings(graph_base=fake.base_url))
        fake.fail_next("POST", 400, 10, 2018278, "This message is sent outside of allowed window.")

Agents' files go out as the Send API's "upload and send" (multipart: ``recipient`` and
``message`` as JSON text, the file as ``filedata``; developers.facebook.com/docs/
messenger-platform/reference/attachment-upload-api): the file is an ``UploadedFile`` in the
sent body. A CDN file a customer sent is served at ``/cdn/<name>`` once ``add_cdn_file``d.

Errors have the Graph API's shape: ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from tests.fakes.server import FakeHandler, LocalHTTPServer

DEFAULT_TOKEN = "EAAfakePageTokenForTestsOnly0123456789abcdef"
DEFAULT_APP_SECRET = "0123456789abcdef0123456789abcdef"
VERSION = "v25.0"


@dataclass(slots=True)
class Call:
    """One request as the fake received it."""

    method: str
    path: str  # without the version prefix, e.g. "me/messages" or "7012345678"
    params: dict[str, str]
    body: dict[str, Any]
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(
    code: int, message: str, subcode: int | None = None, type_: str = "OAuthException"
) -> dict[str, Any]:
    """A Graph API error body."""
    err: dict[str, Any] = {
        "message": message,
        "type": type_,
        "code": code,
        "fbtrace_id": "AbCdEfGhIjK",
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


class FakeGraphAPI(LocalHTTPServer):
    """Answers ``POST me/messages`` and ``GET <psid>`` like the Graph API; scriptable failures."""

    base_path = f"/{VERSION}"

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        app_secret: str | None = DEFAULT_APP_SECRET,
        profiles: dict[str, dict[str, str]] | None = None,
        page: tuple[str, str] = ("104857600123456", "Shop Thời Trang Test"),
    ) -> None:
        self.token = token
        self.page = page  # (id, name) of the Page the token belongs to: what GET /me answers
        # When set, an appsecret_proof sent along must be HMAC-SHA256(app_secret, token).
        self.app_secret = app_secret
        self.profiles = dict(profiles or {})
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._sent: list[dict[str, Any]] = []
        self._failures: deque[tuple[str, int, dict[str, Any], dict[str, str]]] = deque()
        self._next_message_id = 1
        self._cdn: dict[str, tuple[bytes, str]] = {}
        self.cdn_downloads: list[str] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- files on the CDN (what webhooks' attachment URLs point at) -----------------------------
    def add_cdn_file(self, name: str, data: bytes, content_type: str = "image/jpeg") -> str:
        """Serve ``data`` at a CDN-like URL (returned) as the payload.url of a webhook."""
        with self._lock:
            self._cdn[name] = (data, content_type)
        return self.base_url.removesuffix(self.base_path) + f"/cdn/{name}"

    def cdn_get(self, name: str) -> tuple[bytes, str] | None:
        with self._lock:
            self.cdn_downloads.append(name)
            return self._cdn.get(name)

    # -- scripting and inspection -------------------------------------------------------------
    def fail_next(
        self,
        target: str,
        status: int,
        code: int,
        subcode: int | None = None,
        message: str = "",
        headers: dict[str, str] | None = None,
        type_: str = "OAuthException",
    ) -> None:
        """Make the next request matching ``target`` fail with this status and Graph error.

        ``target`` is a method ("POST", "GET") or a path ("me/messages", "/v25.0/me/messages").
        ``status`` 0 closes the connection without an answer.
        """
        body = graph_error(code, message or f"(#{code}) Error", subcode, type_)
        with self._lock:
            self._failures.append((_norm(target), status, body, dict(headers or {})))

    @property
    def calls(self) -> list[Call]:
        """Every request received, in order."""
        with self._lock:
            return list(self._calls)

    def sent(self) -> list[dict[str, Any]]:
        """The bodies of the successful ``me/messages`` sends."""
        with self._lock:
            return list(self._sent)

    # -- answering ----------------------------------------------------------------------------
    def answer(self, call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        """The (status, JSON body, extra headers) the real API would give, give or take."""
        with self._lock:
            self._calls.append(call)
            if call.token != self.token:
                return 400, graph_error(190, "Invalid OAuth access token."), {}
            proof = call.params.get("appsecret_proof")
            if self.app_secret and proof is not None:
                want = hmac.new(
                    self.app_secret.encode(), self.token.encode(), hashlib.sha256
                ).hexdigest()
                if proof != want:
                    msg = "Invalid appsecret_proof provided in the API argument"
                    return 400, graph_error(100, msg, type_="GraphMethodException"), {}
            for i, (target, status, body, headers) in enumerate(self._failures):
                if target in (call.method, call.path):
                    del self._failures[i]
                    return status, body, headers
            return self._result(call)

    def _result(self, call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        if call.method == "POST" and call.path == "me/messages":
            recipient = call.body.get("recipient") or {}
            if not recipient or not call.body.get("message"):
                msg = "(#100) The parameter recipient is required"
                return 400, graph_error(100, msg), {}
            att = call.body["message"].get("attachment") or {}
            payload = att.get("payload") or {}
            upload = call.body.get("filedata")
            if att and "url" not in payload and "attachment_id" not in payload and upload is None:
                return 400, graph_error(100, "(#100) Upload attachment failure."), {}
            if upload is not None and len(upload.data) > 25 * 2**20:
                return 400, graph_error(100, "(#100) Upload attachment failure."), {}
            mid, self._next_message_id = self._next_message_id, self._next_message_id + 1
            self._sent.append(call.body)
            answer = {"message_id": f"m_{mid}"}
            if upload is not None and payload.get("is_reusable"):
                answer["attachment_id"] = f"{1857777774821032 + mid}"
            if "id" in recipient:  # user_ref sends get no recipient_id (Send API reference)
                answer["recipient_id"] = recipient["id"]
            return 200, answer, {}
        if call.method == "GET" and call.path == "me":
            return 200, {"id": self.page[0], "name": self.page[1]}, {}
        if call.method == "GET" and call.path in self.profiles:
            profile = self.profiles[call.path]
            wanted = (call.params.get("fields") or "").split(",")
            return 200, {k: v for k, v in profile.items() if k in wanted} | {"id": call.path}, {}
        msg = (
            f"Unsupported {call.method.lower()} request. Object with ID '{call.path}' does "
            "not exist, cannot be loaded due to missing permissions, or does not support "
            "this operation."
        )
        return 400, graph_error(100, msg, 33, "GraphMethodException"), {}


def _norm(target: str) -> str:
    """ "POST" stays; "/v25.0/me/messages" and "me/messages" both become "me/messages"."""
    if target.isupper():
        return target
    path = target.strip("/")
    return path.removeprefix(f"{VERSION}/")


def _handler_for(fake: FakeGraphAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def serve(self, raw: bytes) -> None:
            path, params, body = self.request_params(raw)
            if path.startswith("/cdn/"):  # a signed CDN link: no token; expired ones get 403
                found = fake.cdn_get(path.removeprefix("/cdn/"))
                if found is None:
                    self.reply(403, b"URL signature expired", "text/plain")
                else:
                    self.reply(200, found[0], found[1])
                return
            for k in ("recipient", "message"):  # multipart sends carry these as JSON text
                if isinstance(body.get(k), str):
                    body[k] = orjson.loads(body[k])
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            # The Graph API takes the token from the header, the query or a form body.
            token = token or params.pop("access_token", None) or body.pop("access_token", None)
            call = Call(self.command, _norm(path), params, body, token, dict(self.headers))
            status, answer, headers = fake.answer(call)
            if status == 0:
                self.close_connection = True
                return
            self.reply(status, orjson.dumps(answer), headers=headers)

    return Handler
