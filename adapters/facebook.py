"""Facebook Messenger adapter: Page webhooks in, the Graph API Send API out.

Meta batches: one POST may carry several ``entry[]``, each with several ``messaging[]`` items,
and every item becomes an event (returning inside the loop drops the rest of a delivery).
Bodies are read as plain dicts: the hub needs a few fields per item, Meta adds new ones often,
and payloads from 2016 still differ from today's. Anything not understood comes back as
``UNSUPPORTED``: kept and counted, never dropped.

The customer is the person's Page-scoped id (PSID). In an echo (a message the Page itself sent,
``message.is_echo``) the Page is the sender, so the customer is the recipient.

Meta pages relied on (stored copies, 2026):
- webhook events: developers.facebook.com/documentation/business-messaging/messenger-platform/
  webhooks/webhook-events (and .../messages, message-echoes, message-deliveries, message-reads,
  message-reactions, message-edits, messaging_postbacks)
- error codes: .../messenger-platform/error-codes; developers.facebook.com/docs/graph-api/
  guides/error-handling
- rate limits: .../messenger-platform/overview/rate-limiting
- windows and tags: .../messenger-platform/policy/ and .../send-messages
- sticker attachment type: .../messenger-platform/changelog/ (Jun 1, 2026)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import orjson
from pydantic import ConfigDict, SecretStr, field_validator

from adapters.base import (
    Adapter,
    ChannelFacts,
    ChannelSettings,
    OutboundMessage,
    RateLimit,
    Receipt,
    constant_time_equal,
    header,
    load_json_object,
    redact_http_logs,
)
from core.errors import DeliveryError, Forbidden, PayloadError, SignatureError, WindowClosed
from core.models import Attachment, Direction, EventKind, InboundEvent, RawEvent

JSON = dict[str, Any]
SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"  # sha1; only when the sha256 header is absent
# The webhook fields the hub understands (docs/connect-facebook.md subscribes these).
SUBSCRIBED_FIELDS = [
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "message_reactions",
    "message_edits",
    "messaging_postbacks",
]
REPLY_WINDOW_S = 24 * 3600  # standard messaging window (policy page)
HUMAN_AGENT_WINDOW_S = 7 * 24 * 3600  # HUMAN_AGENT tag: human replies only, up to 7 days
TEXT_LIMIT = 2000  # Send API: message.text is at most 2000 characters
USER_REF = "user_ref:"  # prefix of customers known by a plugin's user_ref instead of a PSID
_SECRET_PARAMS = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"']+")


class FacebookSettings(ChannelSettings):
    """Settings of one Facebook Page channel."""

    # A failed validation must not echo a token or secret into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    page_id: str
    page_access_token: SecretStr
    app_secret: SecretStr
    verify_token: SecretStr
    graph_base: str = "https://graph.facebook.com/v25.0"

    @field_validator("page_id", mode="before")
    @classmethod
    def _page_id_shape(cls, v: Any) -> str:
        v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # YAML: unquoted
        if not isinstance(v, str) or not re.fullmatch(r"[0-9]{5,20}", v):
            raise ValueError(
                "page_id is the Page's numeric id, e.g. '104857600123456' (Meta Business Suite "
                "→ Settings → Page, or the Page's About → Page transparency)"
            )
        return v

    @field_validator("page_access_token")
    @classmethod
    def _token_shape(cls, v: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[A-Za-z0-9_|.-]{20,}", v.get_secret_value()):
            raise ValueError(
                "a Page access token is one long word of letters and digits (it usually starts "
                "with EAA), as Meta app → Messenger → Settings → Generate token gives it; "
                "no quotes, spaces or 'Bearer '"
            )
        return v

    @field_validator("app_secret")
    @classmethod
    def _secret_shape(cls, v: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[0-9a-fA-F]{32}", v.get_secret_value()):
            raise ValueError(
                "the app secret is 32 hexadecimal characters: Meta app → App settings → Basic "
                "→ App secret → Show (not the app id, not a token)"
            )
        return v

    @field_validator("verify_token")
    @classmethod
    def _verify_shape(cls, v: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[\x21-\x7e]{1,256}", v.get_secret_value()):
            raise ValueError(
                "verify_token is a word you choose (1-256 printable ASCII characters, no "
                "spaces) and type again in the Meta app's webhook settings"
            )
        return v

    @field_validator("graph_base")
    @classmethod
    def _base_shape(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(
                "graph_base must be an http(s) URL, e.g. https://graph.facebook.com/v25.0"
            )
        return v.rstrip("/")


# -- reading webhook bodies --------------------------------------------------------------------
def _load(body: bytes) -> JSON:
    """The body as a dict, or PayloadError when it is not a Page webhook."""
    update = load_json_object(body, "Messenger webhook body")
    if update.get("object") != "page":
        raise PayloadError(
            f'this channel takes Page webhooks ("object": "page"), got {update.get("object")!r}'
            ": point only the app's Page subscription at this URL"
        )
    if not isinstance(update.get("entry"), list):
        raise PayloadError('a Messenger webhook body has an "entry" list')
    return update


def _ms(value: Any) -> int | None:
    """A Meta timestamp in ms. Dashboard test events send seconds, as text: both are read."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value * 1000 if 0 < value < 10**11 else value


def _party(item: JSON, role: str) -> str | None:
    """A sender or recipient: its PSID/Page id, or ``user_ref:...`` for plugin guests."""
    who = item.get(role)
    if not isinstance(who, dict):
        return None
    if who.get("id") is not None:
        return str(who["id"])
    return f"{USER_REF}{who['user_ref']}" if who.get("user_ref") else None


@dataclass(slots=True)
class _Item:
    """The envelope every messaging item shares."""

    sender: str
    recipient: str
    ts_ms: int
    field: str


def _event(
    it: _Item, kind: EventKind, key: str, customer: str | None = None, **fields: Any
) -> InboundEvent:
    who = customer or it.sender
    return InboundEvent(kind, key, who, it.ts_ms, address=who, platform_type=it.field, **fields)


_MEDIA = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "file": "file",
    "reel": "video",
    "ig_reel": "video",
}


def _attachment(att: JSON, msg: JSON) -> Attachment:
    kind = att.get("type")
    payload = att.get("payload") if isinstance(att.get("payload"), dict) else {}
    url = payload.get("url") or att.get("url")
    # Stickers came as images carrying a sticker_id (on the payload, or in 2016 on the
    # message); since June 2026 also as type "sticker" (changelog).
    sticker_id = payload.get("sticker_id") or (msg.get("sticker_id") if kind == "image" else None)
    if kind == "sticker" or (kind == "image" and sticker_id):
        return Attachment("sticker", url=url, meta={"sticker_id": sticker_id} if sticker_id else {})
    if kind in _MEDIA:
        return Attachment(
            _MEDIA[kind], url=url, meta={} if kind == _MEDIA[kind] else {"type": kind}
        )
    title = att.get("title") or payload.get("title")
    if kind == "location":  # legacy: Meta stopped sending locations, old payloads have them
        coords = payload.get("coordinates") or {}
        meta = {"latitude": coords.get("lat"), "longitude": coords.get("long"), "title": title}
        return Attachment(
            "location", url=url, meta={k: v for k, v in meta.items() if v is not None}
        )
    if kind in ("fallback", "share"):  # a shared link
        return Attachment("link", url=url, meta={"title": title} if title else {})
    if kind == "template":  # echoes of the Page's own templates
        return Attachment("template", name=title, meta=payload)
    return Attachment("file", url=url, meta={"type": kind})


def _attachments(msg: JSON) -> list[Attachment]:
    out: list[Attachment] = []
    stickers: dict[Any, int] = {}
    for att in msg.get("attachments") or []:
        found = _attachment(att, msg)
        sticker_id = found.meta.get("sticker_id") if found.kind == "sticker" else None
        if sticker_id is not None:
            # During the 2026 transition one sticker comes twice (image + sticker): keep one,
            # the newer type.
            if sticker_id in stickers:
                if att.get("type") == "sticker":
                    out[stickers[sticker_id]] = found
                continue
            stickers[sticker_id] = len(out)
        out.append(found)
    return out


def _message(it: _Item, msg: JSON) -> InboundEvent:
    """A message from the customer, or the echo of one the Page sent them."""
    echo = bool(msg.get("is_echo"))
    mid = str(msg["mid"])
    reply = msg.get("reply_to") or {}
    ev = _event(
        it,
        EventKind.MESSAGE,
        f"m:{mid}",
        it.recipient if echo else it.sender,
        external_message_id=mid,
        direction=Direction.OUT if echo else Direction.IN,
        text=msg.get("text"),
        attachments=_attachments(msg),
        reply_to=f"m:{reply['mid']}" if reply.get("mid") else None,
        payload=(msg.get("quick_reply") or {}).get("payload"),
    )
    ev.platform_type = "message_echo" if echo else "message"
    if ev.text is None and not ev.attachments:  # a product share, a story mention...
        ev.kind = EventKind.UNSUPPORTED
    return ev


def _delivery(it: _Item, d: JSON) -> InboundEvent:
    watermark = int(d["watermark"])
    return _event(
        it,
        EventKind.DELIVERY,
        f"d:{it.sender}:{watermark}",
        target_ids=[f"m:{mid}" for mid in d.get("mids") or []],
        watermark_ms=watermark,
    )


def _read(it: _Item, r: JSON) -> InboundEvent:
    watermark = int(r["watermark"])
    return _event(it, EventKind.READ, f"r:{it.sender}:{watermark}", watermark_ms=watermark)


def _reaction(it: _Item, r: JSON) -> InboundEvent:
    mid = r["mid"]
    emoji = None if r.get("action") == "unreact" else (r.get("emoji") or r.get("reaction"))
    return _event(
        it,
        EventKind.REACTION,
        f"x:{mid}:{it.sender}:{it.ts_ms}",
        target_ids=[f"m:{mid}"],
        reaction=emoji,
    )


def _edit(it: _Item, e: JSON) -> InboundEvent:
    mid = e["mid"]
    return _event(
        it,
        EventKind.EDIT,
        f"e:{mid}:{e.get('num_edit')}",
        target_ids=[f"m:{mid}"],
        external_message_id=str(mid),
        text=e.get("text"),
    )


def _postback(it: _Item, p: JSON) -> InboundEvent:
    mid = p.get("mid")  # absent from older postbacks
    key = f"m:{mid}" if mid else f"pb:{it.sender}:{it.ts_ms}"
    return _event(
        it,
        EventKind.POSTBACK,
        key,
        external_message_id=mid,
        payload=p.get("payload"),
        text=p.get("title"),
    )


_HANDLERS: dict[str, Callable[[_Item, JSON], InboundEvent]] = {
    "message": _message,
    "delivery": _delivery,
    "read": _read,
    "reaction": _reaction,
    "message_edit": _edit,
    "postback": _postback,
}
_ENVELOPE = frozenset({"sender", "recipient", "timestamp"})


def _item(item: Any, entry_ms: int, where: str) -> InboundEvent:
    """One ``messaging[]`` (or ``standby[]``) item as one event."""
    if not isinstance(item, dict):
        raise PayloadError(f"Messenger {where} is not an object")
    field = next((k for k in _HANDLERS if k in item), None)
    field = field or next((k for k in item if k not in _ENVELOPE), "unknown")
    obj = item.get(field)
    sender, recipient = _party(item, "sender"), _party(item, "recipient")
    if sender is None and field == "optin" and isinstance(obj, dict) and obj.get("user_ref"):
        sender = f"{USER_REF}{obj['user_ref']}"  # checkbox plugin opt-ins name no sender
    if sender is None or recipient is None:
        missing = "sender" if sender is None else "recipient"
        raise PayloadError(f"Messenger {where} ({field}) has no {missing} id: not a messaging item")
    watermark = (
        obj.get("watermark") if field in ("delivery", "read") and isinstance(obj, dict) else None
    )
    ts_ms = _ms(item.get("timestamp"))
    if ts_ms is None and ("timestamp" in item or watermark is None):
        raise PayloadError(f"Messenger {where} ({field}) has no valid timestamp")
    # 2016 deliveries carry timestamp 0 and Meta's own examples none: the watermark says when.
    it = _Item(sender, recipient, ts_ms or _ms(watermark) or entry_ms, field)
    handler = _HANDLERS.get(field)
    if handler is None:  # optin, referral, handover...
        return _event(it, EventKind.UNSUPPORTED, f"u:{it.sender}:{it.ts_ms}:{field}")
    if not isinstance(obj, dict):
        raise PayloadError(f"Messenger {where}.{field} is not an object")
    try:
        return handler(it, obj)
    except (KeyError, TypeError, ValueError) as e:  # a required part missing or mistyped
        raise PayloadError(
            f"Messenger {where} ({field}) is malformed ({type(e).__name__}: {e})"
        ) from None


# Change fields whose value is a messaging item: the app dashboard's "Test" button sends these.
_MESSAGING_FIELDS = frozenset(SUBSCRIBED_FIELDS) | {
    "messaging_optins",
    "messaging_referrals",
    "messaging_handovers",
    "standby",
}


def _change(change: Any, entry_ms: int, where: str) -> InboundEvent:
    """An ``entry[].changes[]`` item: a messaging test event, or a Page feed change."""
    if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
        raise PayloadError(f"Messenger {where} is not a {{field, value}} object")
    field, value = str(change.get("field")), change["value"]
    if field in _MESSAGING_FIELDS:
        return _item(value, entry_ms, f"{where}.value")
    # Feed comments, mentions...: kept under the person they name. The value has no id of its
    # own, so its hash keys it (a redelivery repeats it byte for byte once sorted).
    who = value.get("sender_id") or (value.get("from") or {}).get("id") or "unknown"
    digest = hashlib.blake2b(orjson.dumps(change, option=orjson.OPT_SORT_KEYS), digest_size=12)
    ts_ms = _ms(value.get("created_time")) or entry_ms
    return InboundEvent(
        EventKind.UNSUPPORTED,
        f"c:{field}:{digest.hexdigest()}",
        str(who),
        ts_ms,
        platform_type=field,
    )


def parse_body(body: bytes, received_ms: int) -> list[InboundEvent]:
    """Every event of one webhook body: all entries, all their items, in order."""
    update = _load(body)
    events: list[InboundEvent] = []
    for n, entry in enumerate(update["entry"]):
        if not isinstance(entry, dict):
            raise PayloadError(f"Messenger entry[{n}] is not an object")
        entry_ms = _ms(entry.get("time")) or received_ms
        # standby: items for threads another app (e.g. Page Inbox) controls; same shape.
        for field in ("messaging", "standby", "changes"):
            items = entry.get(field) or []
            if not isinstance(items, list):
                raise PayloadError(f"Messenger entry[{n}].{field} is not a list")
            read = _change if field == "changes" else _item
            page = str(entry["id"]) if entry.get("id") is not None else None
            for i, x in enumerate(items):
                ev = read(x, entry_ms, f"entry[{n}].{field}[{i}]")
                ev.account_id = page  # Meta sends every Page of an app to one URL
                events.append(ev)
    return events


def _text_chunks(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split text over Meta's per-message limit, at a line or word break when there is one."""
    chunks = []
    while len(text) > limit:
        cut = max(text.rfind("\n", 0, limit), text.rfind(" ", 0, limit))
        cut = cut if cut > limit // 2 else limit
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*chunks, text] if text else chunks


# Our attachment kinds → Send API attachment types (Messenger sends attachments by URL).
_SEND_TYPES = {
    "image": "image",
    "sticker": "image",
    "animation": "image",
    "audio": "audio",
    "voice": "audio",
    "video": "video",
    "video_note": "video",
}


def _outgoing(att: Attachment) -> JSON:
    if att.kind == "sticker" and att.meta.get("sticker_id"):  # Sticker API (Jun 2026)
        return {"sticker_id": att.meta["sticker_id"]}
    if not att.url:
        raise DeliveryError(
            f"facebook send: the {att.kind} attachment has no URL; Messenger "
            "sends attachments by URL",
            retryable=False,
            code="bad_request",
        )
    kind = _SEND_TYPES.get(att.kind, "file")
    return {"attachment": {"type": kind, "payload": {"url": att.url, "is_reusable": True}}}


def _recipient(address: str) -> JSON:
    if address.startswith(USER_REF):
        return {"user_ref": address.removeprefix(USER_REF)}
    if address.isdigit():
        return {"id": address}
    raise DeliveryError(
        f"facebook send: {address!r} is not a Page-scoped id", retryable=False, code="bad_request"
    )


class FacebookAdapter(Adapter):
    """One Facebook Page through the Messenger Platform (webhooks + Send API)."""

    name: ClassVar[str] = "facebook"
    Settings: ClassVar[type[ChannelSettings]] = FacebookSettings
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type",)
    settings: FacebookSettings

    def __init__(
        self, channel_id: str, settings: ChannelSettings, http: httpx.Client | None = None
    ) -> None:
        super().__init__(channel_id, settings, http)
        redact_http_logs(_SECRET_PARAMS, r"\1<redacted>")

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
        if not parts:
            raise DeliveryError(
                "nothing to send: no text, no attachment", retryable=False, code="bad_request"
            )
        answers: list[JSON] = []
        for part in parts:
            try:
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
                raise DeliveryError(what, retryable=False, code=e.code) from None
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

    def graph(
        self, method: str, path: str, body: JSON | None = None, params: dict[str, str] | None = None
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
                params={**(params or {}), "appsecret_proof": proof},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as e:  # never pass httpx's text on: it may quote the URL
            code = "timeout" if isinstance(e, httpx.TimeoutException) else "network"
            raise DeliveryError(
                f"facebook {path}: {code} ({type(e).__name__})", retryable=True, code=code
            ) from None
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


# -- Graph API errors --------------------------------------------------------------------------
# Codes from the Messenger error-codes page and the Graph API error-handling guide.
_WINDOW_SUBCODES = {2018278, 2018065}  # "This message is sent outside of allowed window"
_RATE_CODES = {4, 17, 32, 613}  # app, user, page and custom throttling
_TEMPORARY_CODES = {1, 2}  # unknown error / service temporarily unavailable


def _retry_after(headers: Mapping[str, str]) -> float:
    """Meta's hint, in seconds: Retry-After, or the BUC header's minutes; else a minute."""
    if (value := headers.get("retry-after") or "").isdigit():
        return float(value)
    try:
        usage = orjson.loads(headers.get("x-business-use-case-usage") or "{}")
        minutes = max(
            (
                u.get("estimated_time_to_regain_access") or 0
                for uses in usage.values()
                for u in uses
            ),
            default=0,
        )
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        minutes = 0
    return float(minutes * 60) if minutes else 60.0


def _delivery_error(
    path: str, status: int, answer: JSON, headers: Mapping[str, str], secrets: tuple[str, ...]
) -> DeliveryError:
    """Map a Graph API error answer to a ``DeliveryError`` that says whether to retry."""
    err = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    code, sub = err.get("code"), err.get("error_subcode")
    desc = str(err.get("message") or f"HTTP {status}")
    for secret in secrets:
        desc = desc.replace(secret, "<redacted>")
    ids = [f"code {code}" + (f"/{sub}" if sub else "")] if code is not None else []
    ids += [f"fbtrace_id {err['fbtrace_id']}"] if err.get("fbtrace_id") else []
    what = f"facebook {path}: {desc}" + (f" ({', '.join(ids)})" if ids else "")
    if code == 190:  # invalid or expired token
        return DeliveryError(
            f"{what}: the Page access token was rejected; generate a new one "
            "and update page_access_token",
            retryable=False,
            code="unauthorized",
        )
    if sub in _WINDOW_SUBCODES or "outside of allowed window" in desc.lower():
        return DeliveryError(what, retryable=False, code="window_closed")
    if code == 551 or sub == 1545041:  # "This person isn't available right now"
        return DeliveryError(what, retryable=False, code="blocked")
    if code in _RATE_CODES or status == 429:
        return DeliveryError(
            what, retryable=True, retry_after=_retry_after(headers), code="rate_limited"
        )
    if code in _TEMPORARY_CODES or status >= 500:
        return DeliveryError(what, retryable=True, code="server_error")
    return DeliveryError(what, retryable=False, code="bad_request")
