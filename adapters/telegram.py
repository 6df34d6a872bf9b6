"""Telegram Bot API adapter: webhook updates in, ``sendMessage`` and friends out.

Updates are read as plain dicts, not through a model layer: the hub needs a few fields per
update, Telegram adds new ones every release, and old payloads lack some (``file_unique_id``).
Anything not understood comes back as ``UNSUPPORTED``: kept and counted, never dropped.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx
import orjson
from pydantic import ConfigDict, SecretStr

from tongdai.adapters.base import (
    Adapter,
    ChannelFacts,
    ChannelSettings,
    OutboundMessage,
    RateLimit,
    Receipt,
    constant_time_equal,
    header,
    http_base,
    load_json_object,
    must_match,
)
from tongdai.core.errors import DeliveryError, PayloadError, SignatureError
from tongdai.core.models import Attachment, EventKind, IdentifierClaim, InboundEvent, RawEvent

JSON = dict[str, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What setWebhook asks for (message_reaction needs Bot API 7.0 and must be asked for).
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
]
_TOKEN_IN_TEXT = re.compile(r"bot[0-9]+:[A-Za-z0-9_-]+")


class TelegramSettings(ChannelSettings):
    """Settings of one Telegram bot channel."""

    # A failed validation must not echo the token into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr
    secret_token: SecretStr
    api_base: str = "https://api.telegram.org"

    _token = must_match(
        "bot_token", pattern=r"[0-9]{3,}:[A-Za-z0-9_-]{20,}",
        advice="a bot token looks like '123456789:AAE...' (the bot's numeric id, a colon, "
        "then 20+ letters, digits, _ or -), as BotFather gives it")
    _secret = must_match(
        "secret_token", pattern=r"[A-Za-z0-9_-]{1,256}",
        advice="Telegram allows 1-256 characters of A-Z a-z 0-9 _ - in secret_token")
    _base = http_base("api_base", example="https://api.telegram.org")


# -- reading updates ---------------------------------------------------------------------------
def _load(body: bytes) -> JSON:
    return load_json_object(body, "Telegram update")


def _name(user: JSON) -> str:
    full = " ".join(p for p in (user.get("first_name"), user.get("last_name")) if p)
    return full or user.get("title") or user.get("username") or str(user.get("id", "?"))


def _pick(obj: JSON, keys: tuple[str, ...]) -> JSON:
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def _event(kind: EventKind, key: str, who: JSON, ts_ms: int, **fields: Any) -> InboundEvent:
    """An event from ``who`` (a User, or a Chat for channel posts), with its profile."""
    name = _name(who) if who else None
    profile = {"name": name, "username": who.get("username"), "language": who.get("language_code")}
    profile = {k: v for k, v in profile.items() if v}
    return InboundEvent(kind, key, str(who.get("id", "unknown")), ts_ms, profile=profile, **fields)


def _ts_ms(obj: JSON, field: str, received_ms: int) -> int:
    return obj[field] * 1000 if obj.get(field) else received_ms


# field -> (attachment kind, name keys, meta keys). One media field per message; the first hit
# wins, which also skips the legacy twin Telegram sends along (animation + document).
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
_LAT_LON = ("latitude", "longitude")


def _attachments(msg: JSON) -> list[Attachment]:
    for field, kind, name_keys, meta_keys in _MEDIA:
        if not (obj := msg.get(field)):
            continue
        if field == "photo":  # a list of sizes: keep the largest
            obj = max(obj, key=lambda s: s.get("width", 0) * s.get("height", 0))
        meta = _pick(obj, meta_keys)
        if obj.get("file_unique_id"):  # absent from pre-2019 payloads
            meta["unique_id"] = obj["file_unique_id"]
        name = next((obj[k] for k in name_keys if obj.get(k)), None)
        found = Attachment(kind, file_id=obj.get("file_id"), name=name, meta=meta)
        found.mime, found.size = obj.get("mime_type"), obj.get("file_size")
        return [found]
    if venue := msg.get("venue"):  # venues carry a plain `location` too: look at them first
        meta = _pick(venue.get("location") or {}, _LAT_LON) | _pick(venue, ("title", "address"))
        return [Attachment("location", meta=meta)]
    if location := msg.get("location"):
        return [Attachment("location", meta=_pick(location, _LAT_LON))]
    return []


def _contact(ev: InboundEvent, msg: JSON) -> None:
    contact = msg["contact"]
    keys = ("phone_number", "first_name", "last_name", "user_id")
    ev.kind = EventKind.CONTACT_SHARED
    ev.attachments = [Attachment("contact", meta=_pick(contact, keys))]
    # Telegram fills user_id with the sender's id only when they share their own number.
    owner = contact.get("user_id")
    verified = owner is not None and owner == (msg.get("from") or {}).get("id")
    ev.identifier = IdentifierClaim("phone", contact["phone_number"], verified, "telegram_contact")


# Group service messages: field -> short English line for the timeline (first match wins).
_SERVICE: dict[str, Callable[[Any], str]] = {
    "new_chat_members": lambda users: ", ".join(_name(u) for u in users) + " joined",
    "new_chat_member": lambda u: f"{_name(u)} joined",
    "left_chat_member": lambda u: f"{_name(u)} left",
    "new_chat_title": lambda title: f"title changed to {title}",
    "new_chat_photo": lambda _: "chat photo changed",
    "delete_chat_photo": lambda _: "chat photo removed",
    "group_chat_created": lambda _: "group created",
    "supergroup_chat_created": lambda _: "supergroup created",
    "channel_chat_created": lambda _: "channel created",
    "pinned_message": lambda _: "message pinned",
    "migrate_to_chat_id": lambda chat: f"group moved to supergroup {chat}",
    "migrate_from_chat_id": lambda chat: f"supergroup created from group {chat}",
}
# Message keys that are envelope, not content: the first other key names what a message holds.
_ENVELOPE = re.compile(
    r"message_id|message_thread_id|from|sender_chat|chat|date|edit_date|reply_to_message|via_bot"
    r"|.*entities|media_group_id|reply_markup|author_signature|forward_.*|is_.*|has_.*"
)


def _ids(msg: Any, what: str) -> tuple[str, int]:
    chat, mid = (msg.get("chat"), msg.get("message_id")) if isinstance(msg, dict) else (0, 0)
    if not isinstance(chat, dict) or "id" not in chat or not isinstance(mid, int):
        raise PayloadError(f"Telegram {what} lacks chat.id or message_id: not a Message object")
    return str(chat["id"]), mid


def _message(msg: JSON, received_ms: int, what: str = "message") -> InboundEvent:
    """A message as MESSAGE, CONTACT_SHARED, SYSTEM or UNSUPPORTED (edits reuse it)."""
    chat_id, mid = _ids(msg, what)
    reply = msg.get("reply_to_message")
    # Channel posts have no `from`: the chat itself speaks.
    ev = _event(
        EventKind.MESSAGE,
        f"m:{chat_id}:{mid}",
        msg.get("from") or msg["chat"],
        _ts_ms(msg, "date", received_ms),
        address=chat_id,
        external_message_id=str(mid),
        text=msg.get("text") or msg.get("caption"),
        attachments=_attachments(msg),
        reply_to=f"m:{chat_id}:{reply['message_id']}" if reply else None,
        platform_type="message",
    )
    # In a forum supergroup: the topic it was posted in (message_thread_id alone also marks
    # plain reply threads, so only ``is_topic_message`` counts).
    if msg.get("is_topic_message") and msg.get("message_thread_id") is not None:
        ev.topic_id = str(msg["message_thread_id"])
    if ev.text is not None or ev.attachments:
        return ev
    if "contact" in msg:
        _contact(ev, msg)
    elif service := next((f for f in _SERVICE if f in msg), None):
        ev.kind, ev.platform_type = EventKind.SYSTEM, service
        ev.text = _SERVICE[service](msg[service])
    else:  # a poll, dice, game...: kept and counted
        ev.kind = EventKind.UNSUPPORTED
        ev.platform_type = next((k for k in msg if not _ENVELOPE.fullmatch(k)), "message")
    return ev


def _edit(msg: JSON, _key: str, received_ms: int) -> InboundEvent:
    ev = _message(msg, received_ms, "edited_message")
    chat_id, mid = _ids(msg, "edited_message")
    edited = msg.get("edit_date") or msg.get("date") or received_ms // 1000
    ev.kind, ev.platform_type, ev.identifier = EventKind.EDIT, "edited_message", None
    ev.dedupe_key, ev.target_ids = f"e:{chat_id}:{mid}:{edited}", [f"m:{chat_id}:{mid}"]
    ev.platform_ts_ms = edited * 1000
    return ev


def _callback(cb: JSON, _key: str, received_ms: int) -> InboundEvent:
    # Callbacks carry no date: the time we received it is the best there is.
    ev = _event(
        EventKind.POSTBACK,
        f"cb:{cb['id']}",
        cb.get("from") or {},
        received_ms,
        payload=cb.get("data"),
        platform_type="callback_query",
        ack=str(cb["id"]),  # Telegram shows a spinner until answerCallbackQuery
    )
    ev.address = ev.external_user_id
    if msg := cb.get("message"):  # absent under inline-mode messages
        chat_id, mid = _ids(msg, "callback_query.message")
        ev.address, ev.target_ids = chat_id, [f"m:{chat_id}:{mid}"]
    return ev


_BOT_STATUS = {"kicked": EventKind.UNFOLLOW, "left": EventKind.UNFOLLOW}
_BOT_STATUS |= dict.fromkeys(("member", "administrator", "restricted"), EventKind.FOLLOW)


def _member(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    status = upd["new_chat_member"]["status"]
    kind = _BOT_STATUS.get(status, EventKind.UNSUPPORTED)
    return _event(
        kind,
        key,
        upd.get("from") or {},
        _ts_ms(upd, "date", received_ms),
        address=str(upd["chat"]["id"]),
        text=f"bot status: {status}",
        platform_type="my_chat_member",
    )


def _reaction(upd: JSON, key: str, received_ms: int) -> InboundEvent:
    chat_id, mid = _ids(upd, "message_reaction")
    first = (upd.get("new_reaction") or [None])[0]  # empty: the reaction was removed
    who = upd.get("user") or upd.get("actor_chat") or {}  # actor_chat: anonymous admins
    return _event(
        EventKind.REACTION,
        key,
        who,
        _ts_ms(upd, "date", received_ms),
        address=chat_id,
        target_ids=[f"m:{chat_id}:{mid}"],
        reaction=(first.get("emoji") or first.get("type")) if first else None,
        platform_type="message_reaction",
    )


_HANDLERS: dict[str, Callable[[JSON, str, int], InboundEvent]] = {
    "message": lambda msg, _key, received_ms: _message(msg, received_ms),
    "edited_message": _edit,
    "callback_query": _callback,
    "my_chat_member": _member,
    "message_reaction": _reaction,
}


def parse_update(body: bytes, received_ms: int) -> list[InboundEvent]:
    """Normalise one webhook body (one Telegram ``Update``) into events."""
    update = _load(body)
    field = next((k for k in update if k != "update_id"), None)
    if field is None:
        raise PayloadError("Telegram update carries nothing besides update_id")
    obj, uid = update[field], update.get("update_id")
    # Without update_id (hand-made payloads) the body's hash stands in: redeliveries repeat it.
    key = f"u:{uid}"
    if uid is None:
        key = "b:" + hashlib.blake2b(body, digest_size=12).hexdigest()
    if (handler := _HANDLERS.get(field)) is None:
        obj = obj if isinstance(obj, dict) else {}
        who = obj.get("from") or obj.get("user") or {}
        return [_event(EventKind.UNSUPPORTED, key, who, received_ms, platform_type=field)]
    if not isinstance(obj, dict):
        raise PayloadError(f"Telegram update field {field!r} is not an object")
    try:
        return [handler(obj, key, received_ms)]
    except (KeyError, TypeError, AttributeError) as e:  # a required part missing or mistyped
        raise PayloadError(f"Telegram {field} is malformed ({type(e).__name__}: {e})") from None


def _as_int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


class TelegramAdapter(Adapter):
    """Telegram bots through the Bot API (webhook mode, secret-token header)."""

    name: ClassVar[str] = "telegram"
    Settings: ClassVar[type[ChannelSettings]] = TelegramSettings
    log_redaction = (_TOKEN_IN_TEXT, "bot<token>")
    settings: TelegramSettings

    # -- inbound ------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check the secret-token header Telegram echoes from ``setWebhook``."""
        got = header(headers, SECRET_HEADER)
        if got is None:
            raise SignatureError(f"no {SECRET_HEADER} header: set the webhook with a secret_token")
        if not constant_time_equal(got, self.settings.secret_token.get_secret_value()):
            raise SignatureError(f"{SECRET_HEADER} does not match this channel's secret_token")

    def check_body(self, body: bytes) -> None:
        """Reject bodies that are not a JSON object."""
        _load(body)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """One update in, one event out (see ``parse_update``)."""
        return parse_update(raw.body, raw.received_ts_ms)

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        """Send text, or one photo/document per attachment with the text as first caption."""
        chat_id = _as_int(message.address) or message.address  # "@channel" names stay text
        base: JSON = {"chat_id": chat_id}
        # Our external ids are str(message_id); the "m:chat:id" form is tolerated too.
        if reply_to := _as_int((message.reply_to_external_id or "").rsplit(":", 1)[-1]):
            base["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
        calls, caption = [], message.text
        for att in message.attachments:
            field = "photo" if att.kind == "image" else "document"
            params = base | {field: att.url or att.file_id}
            if caption:
                params["caption"] = caption
            calls.append((f"send{field.title()}", params))
            caption = None
        if not calls and message.text:
            calls.append(("sendMessage", base | {"text": message.text}))
        if not calls:
            raise DeliveryError(
                "nothing to send: no text, no attachment", retryable=False, code="bad_request"
            )
        # One send per attachment: a failure midway leaves the earlier ones delivered.
        results = [self.call(method, params)["result"] for method, params in calls]
        ids = [r["message_id"] for r in results]
        sent_ms = results[0].get("date", 0) * 1000 or time.time_ns() // 1_000_000
        return Receipt(str(ids[0]), sent_ms, {"chat_id": chat_id, "message_ids": ids})

    def call(self, method: str, params: JSON) -> JSON:
        """POST one Bot API method; return its JSON answer or raise ``DeliveryError``."""
        token = self.settings.bot_token.get_secret_value()
        try:
            resp = self.http.post(f"{self.settings.api_base}/bot{token}/{method}", json=params)
        except httpx.HTTPError as e:  # never pass httpx's text on: it may quote the URL
            code = "timeout" if isinstance(e, httpx.TimeoutException) else "network"
            what = f"telegram {method}: {code} ({type(e).__name__})"
            raise DeliveryError(what, retryable=True, code=code) from None
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:  # a proxy's HTML error page
            answer = {}
        if resp.status_code == 200 and answer.get("ok"):
            return answer
        raise _delivery_error(method, resp.status_code, answer, token)

    @property
    def bot_id(self) -> str:
        """The bot's own Telegram user id (the token's first part; not a secret)."""
        return self.settings.bot_token.get_secret_value().partition(":")[0]

    def send_message(self, chat_id: int | str, text: str, message_thread_id: int | None = None,
                     reply_to: int | None = None) -> JSON:
        """``sendMessage`` as plain text (no parse mode: customer text needs no escaping),
        into a forum topic when ``message_thread_id`` is given. Returns the sent Message."""
        params: JSON = {"chat_id": chat_id, "text": text,
                        "link_preview_options": {"is_disabled": True}}
        if message_thread_id is not None:
            params["message_thread_id"] = message_thread_id
        if reply_to is not None:
            params["reply_parameters"] = {"message_id": reply_to,
                                          "allow_sending_without_reply": True}
        return self.call("sendMessage", params)["result"]

    def create_forum_topic(self, chat_id: int | str, name: str) -> int:
        """``createForumTopic`` (the bot needs the can_manage_topics admin right); returns the
        new topic's ``message_thread_id``. Names are 1-128 characters."""
        result = self.call("createForumTopic", {"chat_id": chat_id, "name": name[:128]})["result"]
        return int(result["message_thread_id"])

    def set_webhook(self, url: str) -> JSON:
        """Point Telegram at ``url`` with this channel's secret token and update types."""
        secret = self.settings.secret_token.get_secret_value()
        params = {"url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES}
        return self.call("setWebhook", params)

    def delete_webhook(self) -> JSON:
        """Stop webhook delivery (Telegram keeps pending updates for 24 h)."""
        return self.call("deleteWebhook", {})

    def answer_callback_query(self, callback_id: str) -> JSON:
        """Stop the button's spinner: Telegram expects an answer to every callback query."""
        return self.call("answerCallbackQuery", {"callback_query_id": callback_id})

    def acknowledge(self, ack: str) -> None:
        """A pressed button's callback query, answered (see ``answer_callback_query``)."""
        self.answer_callback_query(ack)

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
        n = time.time_ns() // 1000  # microseconds: repeated simulations get distinct ids
        user = {"id": int(user_id), "is_bot": False, "first_name": name}
        message = {"message_id": n % 2**31, "from": user, "chat": user | {"type": "private"}}
        body = {"update_id": n % 2**31, "message": message | {"date": n // 10**6, "text": text}}
        secret = self.settings.secret_token.get_secret_value()
        return {SECRET_HEADER: secret, "Content-Type": "application/json"}, orjson.dumps(body)


def _delivery_error(method: str, status: int, answer: JSON, token: str) -> DeliveryError:
    """Map a Bot API error answer to a ``DeliveryError`` that says whether to retry."""
    code = answer.get("error_code") or status
    desc = str(answer.get("description") or f"HTTP {status}").replace(token, "<token>")
    what, params = f"telegram {method}: {desc}", answer.get("parameters") or {}
    if code == 429 or status == 429:
        retry_after = params.get("retry_after")
        return DeliveryError(what, retryable=True, retry_after=retry_after, code="rate_limited")
    if status >= 500 or code >= 500:
        return DeliveryError(what, retryable=True, code="server_error")
    if code == 403:  # blocked by the user, kicked from the group, chat deactivated
        return DeliveryError(what, retryable=False, code="blocked")
    if code in (401, 404):  # Telegram answers 404 for a token it does not know
        fix = "check bot_token in the channel settings"
        what = f"{what}: the bot token was rejected; {fix}"
        return DeliveryError(what, retryable=False, code="unauthorized")
    if "migrate_to_chat_id" in params:
        what += f" (the group is now supergroup {params['migrate_to_chat_id']})"
    return DeliveryError(what, retryable=False, code="bad_request")
