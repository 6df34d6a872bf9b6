"""Telegram Bot API adapter: webhook updates in, ``sendMessage`` and friends out.

Updates are read as plain dicts (no model layer): a support hub only needs a handful of fields
per update, and Telegram adds new ones every release. Anything not understood comes back as
``UNSUPPORTED`` so it is kept and counted, never dropped.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
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
)
from core.errors import DeliveryError, PayloadError, SignatureError
from core.models import Attachment, EventKind, IdentifierClaim, InboundEvent, RawEvent

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
]
_TOKEN = re.compile(r"^[0-9]{3,}:[A-Za-z0-9_-]{20,}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_TOKEN_IN_TEXT = re.compile(r"bot[0-9]+:[A-Za-z0-9_-]+")
JSON = dict[str, Any]


class TelegramSettings(ChannelSettings):
    """Settings of one Telegram bot channel."""

    # A failed validation must not echo the token back into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr
    secret_token: SecretStr
    api_base: str = "https://api.telegram.org"

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, v: SecretStr) -> SecretStr:
        if not _TOKEN.fullmatch(v.get_secret_value()):
            raise ValueError(
                "a bot token looks like '123456789:AAE...' (the bot's numeric id, "
                "a colon, then 20+ letters, digits, _ or -), as BotFather gives it"
            )
        return v

    @field_validator("secret_token")
    @classmethod
    def _secret_shape(cls, v: SecretStr) -> SecretStr:
        if not _SECRET.fullmatch(v.get_secret_value()):
            raise ValueError(
                "Telegram allows 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "in a webhook secret_token"
            )
        return v

    @field_validator("api_base")
    @classmethod
    def _base_shape(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://api.telegram.org")
        return v.rstrip("/")


class _RedactBotTokens(logging.Filter):
    """httpx logs every request URL at INFO, and Bot API URLs carry the token: mask it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_TEXT.sub("bot<token>", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_TEXT.sub("bot<token>", str(a)) if isinstance(a, str | httpx.URL) else a
                for a in record.args
            )
        return True


def _install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactBotTokens) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactBotTokens())


# -- reading updates ---------------------------------------------------------------------------
def _load(body: bytes) -> JSON:
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"Telegram update is not valid JSON: {e}") from None
    if not isinstance(update, dict):
        raise PayloadError(f"a Telegram update is a JSON object, got {type(update).__name__}")
    return update


def _name(user: JSON) -> str:
    full = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return full or user.get("title") or user.get("username") or str(user.get("id", "?"))


def _profile(who: JSON | None) -> JSON:
    if not who:
        return {}
    p = {"name": _name(who), "username": who.get("username"), "language": who.get("language_code")}
    return {k: v for k, v in p.items() if v}


def _pick(obj: JSON, keys: tuple[str, ...]) -> JSON:
    return {k: obj[k] for k in keys if obj.get(k) is not None}


# field -> (attachment kind, name keys, meta keys). One media field per message; the first hit
# wins, which also skips the legacy twins Telegram sends (animation + document).
_MEDIA: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("photo", "image", (), ("width", "height")),
    ("sticker", "sticker", (), ("emoji", "set_name")),
    ("animation", "animation", ("file_name",), ("duration", "width", "height")),
    ("video", "video", ("file_name",), ("duration", "width", "height")),
    ("video_note", "video_note", (), ("duration", "length")),
    ("voice", "voice", (), ("duration",)),
    ("audio", "audio", ("file_name", "title"), ("duration", "performer")),
    ("document", "file", ("file_name",), ()),
)


def _attachments(msg: JSON) -> list[Attachment]:
    for field, kind, name_keys, meta_keys in _MEDIA:
        obj = msg.get(field)
        if not obj:
            continue
        if field == "photo":  # a list of sizes: keep the largest
            obj = max(
                obj, key=lambda s: (s.get("width", 0) * s.get("height", 0), s.get("file_size", 0))
            )
        meta = _pick(obj, meta_keys)
        if obj.get("file_unique_id"):  # absent from pre-2019 payloads
            meta["unique_id"] = obj["file_unique_id"]
        name = next((obj[k] for k in name_keys if obj.get(k)), None)
        return [
            Attachment(
                kind,
                file_id=obj.get("file_id"),
                name=name,
                mime=obj.get("mime_type"),
                size=obj.get("file_size"),
                meta=meta,
            )
        ]
    if venue := msg.get("venue"):  # venues also carry a plain `location`: check them first
        meta = _pick(venue.get("location") or {}, ("latitude", "longitude"))
        return [Attachment("location", meta=meta | _pick(venue, ("title", "address")))]
    if loc := msg.get("location"):
        return [Attachment("location", meta=_pick(loc, ("latitude", "longitude")))]
    return []


# Group service messages: field -> short English line for the timeline.
_SERVICE: dict[str, Callable[[Any], str]] = {
    "new_chat_members": lambda us: ", ".join(_name(u) for u in us) + " joined",
    "new_chat_member": lambda u: f"{_name(u)} joined",
    "new_chat_participant": lambda u: f"{_name(u)} joined",
    "left_chat_member": lambda u: f"{_name(u)} left",
    "new_chat_title": lambda t: f"title changed to {t}",
    "new_chat_photo": lambda _: "chat photo changed",
    "delete_chat_photo": lambda _: "chat photo removed",
    "group_chat_created": lambda _: "group created",
    "supergroup_chat_created": lambda _: "supergroup created",
    "channel_chat_created": lambda _: "channel created",
    "pinned_message": lambda _: "message pinned",
    "migrate_to_chat_id": lambda i: f"group moved to supergroup {i}",
    "migrate_from_chat_id": lambda i: f"supergroup created from group {i}",
    "message_auto_delete_timer_changed": lambda _: "auto-delete timer changed",
    "video_chat_started": lambda _: "video chat started",
    "video_chat_ended": lambda _: "video chat ended",
    "forum_topic_created": lambda _: "topic created",
}
# Message keys that are envelope, not content (to name what an unknown message carries).
_ENVELOPE = frozenset(
    {
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "chat",
        "date",
        "edit_date",
        "reply_to_message",
        "entities",
        "caption_entities",
        "author_signature",
        "has_protected_content",
        "is_topic_message",
        "via_bot",
        "media_group_id",
        "link_preview_options",
        "reply_markup",
    }
)


def _ids(msg: Any, what: str) -> tuple[str, int]:
    chat, mid = (msg.get("chat"), msg.get("message_id")) if isinstance(msg, dict) else (0, 0)
    if not isinstance(chat, dict) or "id" not in chat or not isinstance(mid, int):
        raise PayloadError(f"Telegram {what} lacks chat.id or message_id: not a Message object")
    return str(chat["id"]), mid


def _message(msg: JSON, what: str, received_ms: int) -> InboundEvent:
    """A message as MESSAGE, CONTACT_SHARED, SYSTEM or UNSUPPORTED (edits reuse it)."""
    chat_id, mid = _ids(msg, what)
    sender = msg.get("from") or msg.get("sender_chat")
    user = str(sender["id"]) if msg.get("from") else chat_id
    reply = msg.get("reply_to_message")
    ev = InboundEvent(
        kind=EventKind.MESSAGE,
        dedupe_key=f"m:{chat_id}:{mid}",
        external_user_id=user,
        platform_ts_ms=msg["date"] * 1000 if msg.get("date") else received_ms,
        address=chat_id,
        external_message_id=str(mid),
        text=msg.get("text") or msg.get("caption"),
        attachments=_attachments(msg),
        profile=_profile(sender or msg["chat"]),
        reply_to=f"m:{chat_id}:{reply['message_id']}" if reply else None,
        platform_type="message",
    )
    if ev.text is not None or ev.attachments:
        return ev
    if contact := msg.get("contact"):
        owner = contact.get("user_id")
        ev.kind = EventKind.CONTACT_SHARED
        ev.attachments = [
            Attachment(
                "contact",
                meta=_pick(contact, ("phone_number", "first_name", "last_name", "user_id")),
            )
        ]
        ev.identifier = IdentifierClaim(
            "phone",
            contact["phone_number"],
            source="telegram_contact",
            verified=owner is not None and owner == (msg.get("from") or {}).get("id"),
        )
    elif service := next((f for f in _SERVICE if f in msg), None):
        ev.kind, ev.platform_type = EventKind.SYSTEM, service
        ev.text = _SERVICE[service](msg[service])
    else:  # a poll, dice, game...: kept and counted
        ev.kind = EventKind.UNSUPPORTED
        ev.platform_type = next((k for k in msg if k not in _ENVELOPE), "message")
    return ev


def _edit(msg: JSON, received_ms: int) -> InboundEvent:
    ev = _message(msg, "edited_message", received_ms)
    chat_id, mid = _ids(msg, "edited_message")
    edited = msg.get("edit_date") or msg.get("date") or received_ms // 1000
    ev.kind, ev.platform_type = EventKind.EDIT, "edited_message"
    ev.dedupe_key, ev.target_ids = f"e:{chat_id}:{mid}:{edited}", [f"m:{chat_id}:{mid}"]
    ev.platform_ts_ms, ev.identifier = edited * 1000, None
    return ev


def _callback(cb: JSON, received_ms: int) -> InboundEvent:
    user, msg = cb.get("from") or {}, cb.get("message")
    ev = InboundEvent(
        EventKind.POSTBACK,
        f"cb:{cb.get('id')}",
        str(user.get("id", "unknown")),
        received_ms,
        payload=cb.get("data"),
        profile=_profile(user),
        platform_type="callback_query",
    )
    ev.address = ev.external_user_id
    if msg:  # absent for buttons under inline-mode messages
        chat_id, mid = _ids(msg, "callback_query.message")
        ev.address, ev.target_ids = chat_id, [f"m:{chat_id}:{mid}"]
    return ev


_BOT_STATUS = {
    "kicked": (EventKind.UNFOLLOW, "blocked or removed the bot"),
    "left": (EventKind.UNFOLLOW, "bot left the chat"),
    "member": (EventKind.FOLLOW, "bot started or added"),
    "administrator": (EventKind.FOLLOW, "bot made administrator"),
    "restricted": (EventKind.FOLLOW, "bot restricted"),
}


def _member(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    status = (upd.get("new_chat_member") or {}).get("status")
    kind, text = _BOT_STATUS.get(status, (EventKind.UNSUPPORTED, None))
    user = upd.get("from") or {}
    return InboundEvent(
        kind,
        key,
        str(user.get("id", "unknown")),
        upd["date"] * 1000 if upd.get("date") else received_ms,
        address=str((upd.get("chat") or {}).get("id", user.get("id"))),
        text=text,
        profile=_profile(user),
        platform_type="my_chat_member",
    )


def _reaction(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    chat_id, mid = _ids(upd, "message_reaction")
    who = upd.get("user") or upd.get("actor_chat") or {}  # actor_chat: anonymous admins
    new = upd.get("new_reaction") or []
    first = new[0] if new else None
    return InboundEvent(
        EventKind.REACTION,
        key,
        str(who.get("id", "unknown")),
        upd["date"] * 1000 if upd.get("date") else received_ms,
        address=chat_id,
        target_ids=[f"m:{chat_id}:{mid}"],
        profile=_profile(who),
        reaction=(first.get("emoji") or first.get("type")) if first else None,
        platform_type="message_reaction",
    )


def _unsupported(field: str, obj: Any, key: str, received_ms: int) -> InboundEvent:
    obj = obj if isinstance(obj, dict) else {}
    who = obj.get("from") or obj.get("user") or {}
    chat = obj.get("chat") or {}
    return InboundEvent(
        EventKind.UNSUPPORTED,
        key,
        str(who.get("id", "unknown")),
        received_ms,
        address=str(chat["id"]) if "id" in chat else None,
        profile=_profile(who),
        platform_type=field,
    )


_HANDLERS: dict[str, Callable[[JSON, str, int], InboundEvent]] = {
    "message": lambda m, _key, ms: _message(m, "message", ms),
    "edited_message": lambda m, _key, ms: _edit(m, ms),
    "callback_query": lambda cb, _key, ms: _callback(cb, ms),
    "my_chat_member": _member,
    "message_reaction": _reaction,
}


def parse_update(body: bytes, received_ms: int) -> list[InboundEvent]:
    """Normalise one webhook body (one Telegram ``Update``) into events."""
    update = _load(body)
    field = next((k for k in update if k != "update_id"), None)
    if field is None:
        raise PayloadError("Telegram update carries nothing besides update_id")
    obj = update[field]
    # update_id is absent from some hand-made payloads: fall back to the body's own hash,
    # which Telegram redeliveries repeat byte for byte.
    uid = update.get("update_id")
    key = (
        f"u:{uid}" if uid is not None else "b:" + hashlib.blake2b(body, digest_size=12).hexdigest()
    )
    handler = _HANDLERS.get(field)
    if handler is None:
        return [_unsupported(field, obj, key, received_ms)]
    if not isinstance(obj, dict):
        raise PayloadError(f"Telegram update field {field!r} is not an object")
    try:
        return [handler(obj, key, received_ms)]
    except (KeyError, TypeError, AttributeError) as e:  # a required part missing or mistyped
        raise PayloadError(f"Telegram {field} is malformed ({type(e).__name__}: {e})") from None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)  # werkzeug Headers: already case-insensitive
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


class TelegramAdapter(Adapter):
    """Telegram bots through the Bot API (webhook mode, secret-token header)."""

    name: ClassVar[str] = "telegram"
    Settings: ClassVar[type[ChannelSettings]] = TelegramSettings
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type",)
    settings: TelegramSettings

    def __init__(
        self, channel_id: str, settings: ChannelSettings, http: httpx.Client | None = None
    ) -> None:
        super().__init__(channel_id, settings, http)
        _install_log_redaction()

    # -- inbound ------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check the secret-token header Telegram echoes from ``setWebhook``."""
        got = _header(headers, SECRET_HEADER)
        if got is None:
            raise SignatureError(
                f"missing {SECRET_HEADER} header: the webhook must be set "
                "with this channel's secret_token"
            )
        if not constant_time_equal(got, self.settings.secret_token.get_secret_value()):
            raise SignatureError(f"{SECRET_HEADER} does not match this channel's secret_token")

    def check_body(self, body: bytes) -> None:
        """Reject bodies that are not a JSON object."""
        _load(body)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """One update in, normally one event out (see the module docstring)."""
        return parse_update(raw.body, raw.received_ts_ms)

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        """Send text, or one photo/document call per attachment with the text as caption."""
        chat_id = _as_int(message.address) or message.address  # "@channel" names stay text
        base: JSON = {"chat_id": chat_id}
        # Our external ids are str(message_id); tolerate the "m:chat:id" dedupe form too.
        reply_to = _as_int((message.reply_to_external_id or "").rsplit(":", 1)[-1])
        if reply_to:
            base["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
        calls: list[tuple[str, JSON]] = []
        caption = message.text
        for att in message.attachments:
            method, field = (
                ("sendPhoto", "photo") if att.kind == "image" else ("sendDocument", "document")
            )
            calls.append(
                (
                    method,
                    base
                    | {field: att.url or att.file_id}
                    | ({"caption": caption} if caption else {}),
                )
            )
            caption = None
        if not calls:
            if not message.text:
                raise DeliveryError(
                    "nothing to send: no text and no attachments",
                    retryable=False,
                    code="bad_request",
                )
            calls.append(("sendMessage", base | {"text": message.text}))
        results = [self.call(method, params)["result"] for method, params in calls]
        first = results[0]
        return Receipt(
            external_id=str(first["message_id"]),
            sent_ts_ms=first.get("date", 0) * 1000 or time.time_ns() // 1_000_000,
            raw={
                "chat_id": first.get("chat", {}).get("id", chat_id),
                "message_ids": [r["message_id"] for r in results],
            },
        )

    def call(self, method: str, params: JSON) -> JSON:
        """POST one Bot API method; return its JSON answer or raise ``DeliveryError``."""
        token = self.settings.bot_token.get_secret_value()
        try:
            resp = self.http.post(f"{self.settings.api_base}/bot{token}/{method}", json=params)
        except httpx.TimeoutException:  # never pass httpx's text on: it may hold the URL
            raise DeliveryError(
                f"telegram {method}: timed out", retryable=True, code="timeout"
            ) from None
        except httpx.HTTPError as e:
            raise DeliveryError(
                f"telegram {method}: network error ({type(e).__name__})",
                retryable=True,
                code="network",
            ) from None
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            answer = {}
        if resp.status_code == 200 and answer.get("ok"):
            return answer
        raise _delivery_error(method, resp.status_code, answer, token)

    def set_webhook(self, url: str) -> JSON:
        """Point Telegram at ``url`` with this channel's secret token and update types."""
        return self.call(
            "setWebhook",
            {
                "url": url,
                "secret_token": self.settings.secret_token.get_secret_value(),
                "allowed_updates": ALLOWED_UPDATES,
            },
        )

    def delete_webhook(self) -> JSON:
        """Stop webhook delivery (Telegram keeps pending updates for 24 h)."""
        return self.call("deleteWebhook", {})

    def answer_callback_query(self, callback_id: str, text: str | None = None) -> JSON:
        """Stop the button's spinner; Telegram expects this for every callback query."""
        return self.call(
            "answerCallbackQuery",
            {"callback_query_id": callback_id} | ({"text": text} if text else {}),
        )

    def facts(self) -> ChannelFacts:
        """No reply window; 1 msg/s per chat, 30 msg/s per bot; contacts can vouch a phone."""
        return ChannelFacts(
            reply_window_s=None,
            rate_limits=(RateLimit("address", 1, 1.0), RateLimit("channel", 30, 1.0)),
            verifiable_identifiers=frozenset({"phone"}),
            redelivery_horizon_s=86400,
        )

    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        """A private-chat text update as Telegram would POST it, with a valid secret header."""
        uid, n = int(user_id), time.time_ns() // 1000
        user = {"id": uid, "is_bot": False, "first_name": name}
        body = {
            "update_id": n % 2**31,
            "message": {
                "message_id": n % 2**31,
                "from": user,
                "chat": user | {"type": "private"},
                "date": n // 1_000_000,
                "text": text,
            },
        }
        headers = {
            SECRET_HEADER: self.settings.secret_token.get_secret_value(),
            "Content-Type": "application/json",
        }
        return headers, orjson.dumps(body)


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _delivery_error(method: str, status: int, answer: JSON, token: str) -> DeliveryError:
    code = answer.get("error_code") or status
    desc = str(answer.get("description") or f"HTTP {status}").replace(token, "<token>")
    params = answer.get("parameters") or {}
    what = f"telegram {method}: {desc}"
    if code == 429 or status == 429:
        return DeliveryError(
            what, retryable=True, retry_after=params.get("retry_after"), code="rate_limited"
        )
    if status >= 500 or code >= 500:
        return DeliveryError(what, retryable=True, code="server_error")
    if code == 403:  # blocked by the user, kicked from the group, chat deactivated
        return DeliveryError(what, retryable=False, code="blocked")
    if code in (401, 404):
        return DeliveryError(
            f"telegram {method}: the bot token was rejected ({desc}); "
            "check bot_token in the channel settings",
            retryable=False,
            code="unauthorized",
        )
    if "migrate_to_chat_id" in params:
        what += f" (the group is now supergroup {params['migrate_to_chat_id']})"
    return DeliveryError(what, retryable=False, code="bad_request")
