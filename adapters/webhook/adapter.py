"""The declarative adapter: verification, parsing and sending as the channel's settings say.

Everything is compiled when the channel is built (start-up, or a config edit applied live):
JMESPath expressions, templates, the signed string. Sending is one HTTP call per reply; its
answer is read as success (the platform's message id at ``send.message_id``), "already sent"
(an idempotency key the platform had accepted), "retry later" or a permanent failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import orjson

from tongdai.adapters.base import (
    Adapter,
    ChannelFacts,
    ChannelSettings,
    FetchedFile,
    OutboundMessage,
    RateLimit,
    Receipt,
    WindowState,
    constant_time_equal,
    download,
    header,
    transport_error,
)
from tongdai.adapters.webhook.events import EventReader, load_body
from tongdai.adapters.webhook.expressions import EvaluationError, Getter, getter, truthy
from tongdai.adapters.webhook.settings import HmacVerify, NoVerify, TokenVerify, WebhookSettings
from tongdai.adapters.webhook.templates import PLACEHOLDER, Body, Text, url_part
from tongdai.core.errors import DeliveryError, SignatureError
from tongdai.core.models import Attachment, AuthorKind, InboundEvent, RawEvent

log = logging.getLogger(__name__)
# Idempotency keys as UUIDs (LINE's X-Line-Retry-Key wants one): the same key, the same UUID.
_KEY_SPACE = uuid.UUID("6f1c2a4e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")


class WebhookAdapter(Adapter):
    """Any platform with a JSON webhook in and a JSON send API out, configured in YAML."""

    name: ClassVar[str] = "webhook"
    Settings: ClassVar[type[ChannelSettings]] = WebhookSettings
    settings: WebhookSettings

    def __init__(self, channel_id: str, settings: ChannelSettings,
                 http: httpx.Client | None = None) -> None:
        super().__init__(channel_id, settings, http)
        s = self.settings
        self.platform = s.platform
        self.reader = EventReader(s.events, s.platform)
        self._secrets = {f"secrets.{k}": v.get_secret_value() for k, v in s.secrets.items()}
        self._signed = _signed_parts(s.verify.signed) if isinstance(s.verify, HmacVerify) else []
        if isinstance(s.verify, NoVerify):  # allowed, stated in the config; said once more here
            log.warning("channel %s accepts unsigned webhook requests (verify: none, reason: %s)",
                        channel_id, s.verify.reason)
        send = s.send
        self._url, self._body = Text(send.url), Body(send.body)
        self._headers = {k: Text(v) for k, v in send.headers.items()}
        self._message_id: Getter = getter(send.message_id)
        self._checks = {name: getter(expr) for name in ("retry_when", "fail_when", "retry_after",
                                                        "error")
                        if (expr := getattr(send, name)) is not None}
        self._retry_codes = {s for s in send.retry_status if isinstance(s, int)}
        self._retry_classes = {int(s[0]) for s in send.retry_status if isinstance(s, str)}
        self._secret_texts = [v for v in self._secrets.values() if v]
        f = s.files
        self._files = None if f is None else (
            Text(f.url), {k: Text(v) for k, v in f.headers.items()}, frozenset(f.kinds))
        p = s.profile
        self._profile = None if p is None else (
            Text(p.url), {k: Text(v) for k, v in p.headers.items()}, getter(p.name),
            getter(p.picture) if p.picture else None)

    # -- inbound ------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """The settings' check: an HMAC, a shared token, or none (stated with a reason)."""
        v = self.settings.verify
        if isinstance(v, HmacVerify):
            got = header(headers, v.header)
            if got is None:
                raise SignatureError(f"no {v.header} header: this is not a signed "
                                     f"{self.platform} request")
            if v.prefix and not got.startswith(v.prefix):
                raise SignatureError(f"{v.header} does not start with {v.prefix!r}")
            key = self._secrets[f"secrets.{v.secret}"].encode()
            signed = body if not self._signed else b"".join(
                body if part is None else (
                    (header(headers, part) or "").encode() if isinstance(part, str) else part)
                for part in self._signed)
            digest = hmac.new(key, signed, getattr(hashlib, v.algorithm)).digest()
            want = (digest.hex() if v.encoding == "hex" else base64.b64encode(digest).decode())
            given = got[len(v.prefix):]
            if v.encoding == "hex":
                given = given.lower()
            if not constant_time_equal(given, want):
                raise SignatureError(f"{v.header} does not match this channel's secret "
                                     f"{v.secret!r}")
        elif isinstance(v, TokenVerify):
            got = header(headers, v.header)
            want = v.prefix + self._secrets[f"secrets.{v.secret}"]
            if got is None or not constant_time_equal(got, want):
                raise SignatureError(f"{v.header} is missing or does not match this channel's "
                                     f"secret {v.secret!r}")
        # kind none: stated in the config with its reason (a private network)

    def check_body(self, body: bytes) -> None:
        """Reject a body that is not JSON (→ 400): nothing is stored."""
        load_body(body, self.platform)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """Every event of the body by the ``events:`` mapping (see ``events.EventReader``)."""
        return self.reader.read(raw.body, raw.received_ts_ms)

    # -- outbound -----------------------------------------------------------------------------
    def _values(self, message: OutboundMessage) -> dict[str, Any]:
        return {
            "address": message.address, "text": message.text,
            "reply_to": (message.reply_to_external_id or "").removeprefix("m:") or None,
            "idempotency_key": message.idempotency_key,
            "idempotency_uuid": str(uuid.uuid5(_KEY_SPACE,
                                               f"{self.channel_id}:{message.idempotency_key}")),
            "channel_id": self.channel_id, **self._secrets,
        }

    def request(self, message: OutboundMessage, masked: bool = False
                ) -> tuple[str, dict[str, str], bytes]:
        """The URL, headers and JSON body a send of ``message`` makes; ``masked`` puts
        ``<secrets.NAME>`` where each secret goes (for showing it to a person)."""
        values = self._values(message)
        if masked:
            values |= {k: f"<{k}>" for k in self._secrets}
        url = self._url.render(values, None if masked else url_part)
        headers = {k: t.render(values) for k, t in self._headers.items()}
        headers.setdefault("Content-Type", "application/json")
        return url, headers, orjson.dumps(self._body.render(values))

    def send(self, message: OutboundMessage) -> Receipt:
        """One call with the templated URL, headers and body; the answer read by the settings."""
        what = f"{self.platform} send"
        if message.attachments:
            raise DeliveryError(f"{what}: this channel's send template sends text only; "
                                "attachments cannot go out on it", retryable=False,
                                code="bad_request")
        if not message.text:
            raise DeliveryError(f"{what}: nothing to send", retryable=False, code="bad_request")
        url, headers, body = self.request(message)
        try:
            resp = self.http.request(self.settings.send.method, url, content=body,
                                     headers=headers)
        except httpx.HTTPError as e:
            raise transport_error(e, what) from None
        try:
            answer = orjson.loads(resp.content) if resp.content else None
        except orjson.JSONDecodeError:  # a proxy's HTML error page
            answer = None
        return self._receipt(resp, answer, message)

    def _check(self, name: str, answer: Any) -> Any:
        """``send.<name>`` on an answer; a failing expression counts as null (and is logged:
        the call was made, so its outcome must still be decided)."""
        get = self._checks.get(name) if name != "message_id" else self._message_id
        if get is None:
            return None
        try:
            return get(answer)
        except EvaluationError as exc:
            log.warning("channel %s: send.%s %s", self.channel_id, name, exc)
            return None

    def _receipt(self, resp: httpx.Response, answer: Any, message: OutboundMessage) -> Receipt:
        status, what = resp.status_code, f"{self.platform} send"
        send = self.settings.send
        check = self._check
        done = status in send.already_sent
        if not done and (status in self._retry_codes or status // 100 in self._retry_classes
                         or truthy(check("retry_when", answer))):
            after = _seconds(resp.headers.get("retry-after"))
            if after is None:
                after = _seconds(check("retry_after", answer))
            code = "rate_limited" if status == 429 else (
                "server_error" if status >= 500 else "retry_later")
            raise DeliveryError(self._describe(what, status, answer), retryable=True,
                                retry_after=after, code=code)
        failed = truthy(check("fail_when", answer))
        if not done and (failed or not 200 <= status < 300):
            code = "unauthorized" if status in (401, 403) else "bad_request"
            text = self._describe(what, status, answer)
            if code == "unauthorized":
                text += ": the platform refused the credentials; check this channel's secrets"
            raise DeliveryError(text, retryable=False, code=code)
        external = check("message_id", answer)
        if external is None:
            log.warning("%s on channel %s: send.message_id %r found no id in the answer",
                        what, self.channel_id, send.message_id)
        return Receipt("" if external is None else str(external), time.time_ns() // 1_000_000,
                       {"status": status, "already_sent": done})

    def _describe(self, what: str, status: int, answer: Any) -> str:
        """HTTP status and the platform's own error text, with no secret in it."""
        text = f"{what}: HTTP {status}"
        if (said := self._check("error", answer)) is not None:
            said = str(said)[:300]
            for secret in self._secret_texts:
                said = said.replace(secret, "<secret>")
            text += f" ({said})"
        return text

    def fetch_file(self, att: Attachment, max_bytes: int) -> FetchedFile | None:
        """A file a customer sent, when ``files:`` says how (a GET of its url with its
        headers); None for kinds it leaves out and attachments without what its url needs."""
        if self._files is None:
            return None
        url_t, header_ts, kinds = self._files
        if att.kind not in kinds:
            return None
        given = {"file_id": att.file_id, "url": att.url}
        needed = [name for is_name, name in url_t.parts if is_name and name in given]
        if not needed or any(not given[n] for n in needed):
            return None
        if (att.file_id or "x").strip(".") == "":  # "." or "..": another path of the API
            raise DeliveryError(f"{self.platform} file id {att.file_id!r} is not a file",
                                retryable=False, code="bad_request")
        values = {"file_id": att.file_id, "url": att.url, "channel_id": self.channel_id,
                  **self._secrets}
        url = (att.url or "") if url_t.whole == "url" else url_t.render(values, url_part)
        headers = {k: t.render(values) for k, t in header_ts.items()}
        got = download(self.http, url, max_bytes, f"{self.platform} file download", headers)
        return FetchedFile(got.data, got.mime or att.mime, att.name)

    def fetch_profile(self, external_user_id: str) -> dict[str, Any] | None:
        """Name and picture from the platform's profile API, when ``profile:`` is set."""
        if self._profile is None:
            return None
        url_t, header_ts, name_of, picture_of = self._profile
        values = {"user_id": external_user_id, "channel_id": self.channel_id, **self._secrets}
        url = url_t.render(values, url_part)
        headers = {k: t.render(values) for k, t in header_ts.items()}
        try:
            resp = self.http.get(url, headers=headers)
        except httpx.HTTPError as e:
            raise transport_error(e, f"{self.platform} profile") from None
        if resp.status_code != 200:
            return None
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            return None
        try:
            name = name_of(answer)
            picture = picture_of(answer) if picture_of else None
        except EvaluationError as exc:
            log.warning("channel %s: profile %s", self.channel_id, exc)
            return None
        return {k: v for k, v in (("name", name), ("picture", picture)) if v} or None

    def window(self, last_inbound_ts_ms: int | None, now_ms: int,
               author_kind: AuthorKind) -> WindowState:
        """The base rules, said with the platform's name ("LINE allows...", not "webhook")."""
        state = super().window(last_inbound_ts_ms, now_ms, author_kind)
        state.reason = state.reason.replace(f"{self.name} allows", f"{self.platform} allows")
        detail = getattr(state, "detail", None)
        if isinstance(detail, dict) and "platform" in detail:
            detail["platform"] = self.platform
        return state

    def facts(self) -> ChannelFacts:
        """The window, rate limit and idempotency the settings state."""
        s = self.settings
        rl = s.send.rate_limit
        return ChannelFacts(
            reply_window_s=s.reply_window,
            rate_limits=(RateLimit(rl.scope, rl.count, rl.per),) if rl else (),
            redelivery_horizon_s=s.redelivery_horizon,
            idempotent_sends=s.send.idempotent,
        )


def _signed_parts(template: str) -> list[bytes | str | None]:
    """The signed string as parts: bytes (literal), None (the body), str (a header name)."""
    parts: list[bytes | str | None] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        if m.start() > pos:
            parts.append(template[pos:m.start()].encode())
        name = m.group(1)
        parts.append(None if name == "body" else name.partition(".")[2])
        pos = m.end()
    if pos < len(template):
        parts.append(template[pos:].encode())
    return [] if parts == [None] else parts


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
