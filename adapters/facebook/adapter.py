"""The Facebook Page adapter: handshake, signature check, parsing, Send API, profiles."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import orjson

from tongdai.adapters.base import (
    FILE_KINDS,
    Adapter,
    ChannelFacts,
    ChannelSettings,
    FetchedFile,
    FileRefusal,
    OutboundMessage,
    RateLimit,
    Receipt,
    constant_time_equal,
    download,
    header,
    transport_error,
)
from tongdai.adapters.facebook.events import JSON, _load, parse_body
from tongdai.adapters.facebook.graph_errors import _delivery_error
from tongdai.adapters.facebook.send_api import (
    _UPLOAD,
    UPLOAD_LIMIT,
    _outgoing,
    _recipient,
    _text_chunks,
)
from tongdai.adapters.facebook.settings import FacebookSettings
from tongdai.core.errors import DeliveryError, Forbidden, PayloadError, SignatureError, WindowClosed
from tongdai.core.models import Attachment, InboundEvent, RawEvent

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"  # sha1; only when the sha256 header is absent
REPLY_WINDOW_S = 24 * 3600  # standard messaging window (policy page)
HUMAN_AGENT_WINDOW_S = 7 * 24 * 3600  # HUMAN_AGENT tag: human replies only, up to 7 days
_SECRET_PARAMS = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"']+")


class FacebookAdapter(Adapter):
    """One Facebook Page through the Messenger Platform (webhooks + Send API)."""

    name: ClassVar[str] = "facebook"
    native_buttons: ClassVar[bool] = True
    Settings: ClassVar[type[ChannelSettings]] = FacebookSettings
    log_redaction = (_SECRET_PARAMS, r"\1<redacted>")
    settings: FacebookSettings

    # -- inbound ------------------------------------------------------------------------------
    def handshake(self, args: Mapping[str, str]) -> str | None:
        """Answer Meta's subscription check (GET with hub.mode, hub.verify_token, hub.challenge)."""
        mode = args.get("hub.mode")
        if mode != "subscribe":
            raise PayloadError(f"hub.mode must be 'subscribe', got {mode!r}")
        token = self.settings.verify_token.get_secret_value()
        if not constant_time_equal(args.get("hub.verify_token"), token):
            raise Forbidden(
                "hub.verify_token does not match this channel's verify_token: type "
                "the same word in the Meta app's webhook settings"
            )
        challenge = args.get("hub.challenge")
        if not challenge:
            raise PayloadError("the handshake carries no hub.challenge to echo")
        return challenge

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check Meta's HMAC of the raw body with the app secret (sha256; sha1 only alone)."""
        secret = self.settings.app_secret.get_secret_value().encode()
        got, algo = header(headers, SIGNATURE_HEADER), hashlib.sha256
        if got is None and (got := header(headers, LEGACY_SIGNATURE_HEADER)) is not None:
            algo = hashlib.sha1
        if got is None:
            raise SignatureError(f"no {SIGNATURE_HEADER} header: not a webhook from Meta")
        prefix = "sha256=" if algo is hashlib.sha256 else "sha1="
        expected = prefix + hmac.new(secret, body, algo).hexdigest()
        if not constant_time_equal(got.strip().lower(), expected):
            raise SignatureError(
                f"{prefix[:-1]} signature does not match: is app_secret the secret of the Meta "
                "app that sends these webhooks?"
            )

    @property
    def account_id(self) -> str | None:
        """The Page id: events of an app's other Pages are filed under their own channels."""
        return self.settings.page_id

    def check_body(self, body: bytes) -> None:
        """Reject bodies that are not a Page webhook (JSON, object page, an entry list)."""
        _load(body)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """Every event of the body (see ``parse_body``)."""
        return parse_body(raw.body, raw.received_ts_ms)

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        """Send text (split at 2000 characters), then one message per attachment."""
        kind = self._messaging_type(message, time.time_ns() // 1_000_000)
        recipient = _recipient(message.address)
        parts = [{"text": chunk} for chunk in _text_chunks(message.text or "")]
        parts += [_outgoing(att) for att in message.attachments]
        if message.buttons and parts:  # quick replies on the last part; a press comes back
            # as a message with quick_reply.payload (titles: 20 characters at most)
            parts[-1]["quick_replies"] = [
                {"content_type": "text", "title": title[:20], "payload": data}
                for data, title in message.buttons]
        if not parts:
            raise DeliveryError(
                "nothing to send: no text, no attachment", retryable=False, code="bad_request"
            )
        answers: list[JSON] = []
        for part in parts:
            try:
                upload = part.pop(_UPLOAD, None)
                if upload is not None:  # upload and send in one call (Attachment Upload API)
                    form = {"recipient": recipient, "message": part} | kind
                    answers.append(self.graph("POST", "me/messages", form={
                        k: v if isinstance(v, str) else orjson.dumps(v).decode()
                        for k, v in form.items()}, files={"filedata": (
                            upload.name or "file", upload.data,
                            upload.mime or "application/octet-stream")}))
                    continue
                answers.append(
                    self.graph(
                        "POST", "me/messages", {"recipient": recipient, "message": part} | kind
                    )
                )
            except DeliveryError as e:
                if not answers:
                    raise
                # Some parts went out: a retry would send them twice. Final, and says so.
                what = f"{len(answers)} of {len(parts)} parts were sent before: {e}"
                raise DeliveryError(what, retryable=False, code=e.code,
                                    uncertain=e.uncertain) from None
        if not all(a.get("message_id") for a in answers):  # 200 without an id: not sent
            raise DeliveryError(
                "facebook me/messages: answered without a message_id",
                retryable=False,
                code="server_error",
            )
        ids = [str(a["message_id"]) for a in answers]
        raw = {"recipient_id": answers[0].get("recipient_id"), "message_ids": ids} | kind
        return Receipt(ids[0], time.time_ns() // 1_000_000, raw)

    def _messaging_type(self, message: OutboundMessage, now_ms: int) -> JSON:
        """RESPONSE inside 24 h; the HUMAN_AGENT tag for a person up to 7 days; else refuse.

        Refused before calling Meta: tagging a bot's or an automatic message is against
        Meta's policy and the tag is withdrawn from apps that misuse it.
        """
        state = self.window(message.last_inbound_ts_ms, now_ms, message.author_kind)
        if not state.open:
            raise WindowClosed(f"cannot send on facebook: {state.reason}")
        last_ms = message.last_inbound_ts_ms  # never None here: window() is closed without it
        if last_ms is not None and now_ms - last_ms <= REPLY_WINDOW_S * 1000:
            return {"messaging_type": "RESPONSE"}
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}

    def sent_dedupe_keys(self, message: OutboundMessage, receipt: Receipt) -> list[str]:
        """Meta echoes each sent message with its mid: ``m:<mid>``, like inbound messages."""
        return [f"m:{mid}" for mid in receipt.raw.get("message_ids") or [receipt.external_id]]

    def fetch_profile(self, external_user_id: str) -> dict[str, Any] | None:
        """Name and picture from the User Profile API; None when Meta will not tell."""
        if not external_user_id.isdigit():  # user_ref guests have no profile
            return None
        try:
            p = self.graph(
                "GET", external_user_id, params={"fields": "first_name,last_name,profile_pic"}
            )
        except DeliveryError:
            return None
        name = " ".join(x for x in (p.get("first_name"), p.get("last_name")) if x)
        found = {"name": name, "picture": p.get("profile_pic")}
        return {k: v for k, v in found.items() if v} or None

    def check_credentials(self) -> list[str]:
        """``tongdai channels check``: GET /me with the Page token and its app secret proof;
        the token must be this Page's (DeliveryError otherwise)."""
        me = self.graph("GET", "me", params={"fields": "id,name"})
        if str(me.get("id")) != self.settings.page_id:
            raise DeliveryError(
                f"facebook /me: the page_access_token belongs to {me.get('id')}, not to page_id "
                f"{self.settings.page_id}: generate the token for this Page",
                retryable=False, code="unauthorized")
        return [(f"GET /me with the Page token and app secret proof: Page "
                f"{me.get('name') or '?'} ({me['id']})")]

    def fetch_file(self, att: Attachment, max_bytes: int) -> FetchedFile | None:
        """A file a customer sent, from the CDN URL in the webhook (it expires: fetched soon
        after ingest)."""
        if att.kind not in FILE_KINDS or not att.url:
            return None
        return download(self.http, att.url, max_bytes, "facebook attachment download")

    def file_refusal(self, kind: str, mime: str, size: int) -> FileRefusal | None:
        """Messenger takes attachments up to 25 MB (Send API reference)."""
        if size > UPLOAD_LIMIT:
            return FileRefusal("too_big", f"messenger takes files up to {UPLOAD_LIMIT} bytes",
                               {"platform": self.name, "max_mb": UPLOAD_LIMIT // 2**20})
        return None

    def graph(
        self, method: str, path: str, body: JSON | None = None, params: dict[str, str] | None = None,
        form: dict[str, str] | None = None, files: dict | None = None,
    ) -> JSON:
        """One Graph API call; its JSON answer, or ``DeliveryError`` saying whether to retry.

        The token travels in the Authorization header, never in the URL, and is sent with an
        appsecret_proof so it also works when the app requires one.
        """
        token = self.settings.page_access_token.get_secret_value()
        secret = self.settings.app_secret.get_secret_value().encode()
        proof = hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()
        try:
            resp = self.http.request(
                method,
                f"{self.settings.graph_base}/{path}",
                json=body,
                data=form,
                files=files,
                params={**(params or {}), "appsecret_proof": proof},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as e:  # uncertain once the request was written
            raise transport_error(e, f"facebook {path}") from None
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:  # a proxy's HTML error page
            answer = {}
        if resp.status_code == 200 and isinstance(answer, dict) and "error" not in answer:
            return answer
        answer = answer if isinstance(answer, dict) else {}
        raise _delivery_error(path, resp.status_code, answer, resp.headers, (token, proof))

    def facts(self) -> ChannelFacts:
        """24 h replies (7 days for human agents), 250 sends/s per Page, no verified ids."""
        return ChannelFacts(
            reply_window_s=REPLY_WINDOW_S,
            human_agent_window_s=HUMAN_AGENT_WINDOW_S,
            # Meta allows 300 calls/s per Page for text (10/s with audio or video); stay below.
            rate_limits=(RateLimit("channel", 250, 1.0),),
            verifiable_identifiers=frozenset(),
            # Meta retries an unacknowledged webhook for up to ~36 h.
            redelivery_horizon_s=36 * 3600,
        )

    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        """A one-message Page webhook signed as Meta signs it. Messenger sends no names, so
        ``name`` is unused: the profile job fetches it."""
        n = time.time_ns()
        page = self.settings.page_id
        item = {
            "sender": {"id": user_id},
            "recipient": {"id": page},
            "timestamp": n // 10**6,
            "message": {"mid": f"m_sim{n}", "text": text},
        }
        entry = {"id": page, "time": n // 10**6, "messaging": [item]}
        # Like Meta, escape non-ASCII as \uXXXX: the signature covers these exact bytes.
        body = json.dumps({"object": "page", "entry": [entry]}, separators=(",", ":")).encode()
        secret = self.settings.app_secret.get_secret_value().encode()
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}, body
