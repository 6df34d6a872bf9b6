"""The Telegram bot adapter: secret-token check, parsing, and the Bot API client (sending,
webhooks, forum topics, callback answers) with its error mapping."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import ClassVar

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
from tongdai.adapters.telegram.events import JSON, _load, parse_update
from tongdai.adapters.telegram.settings import TelegramSettings
from tongdai.core.errors import DeliveryError, SignatureError
from tongdai.core.models import Attachment, InboundEvent, RawEvent

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# What setWebhook asks for (message_reaction needs Bot API 7.0 and must be asked for).
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
]
# Bot API limits (core.telegram.org/bots/api: getFile, sendPhoto, sendDocument)
DOWNLOAD_LIMIT = 20 * 2**20
PHOTO_LIMIT = 10 * 2**20
UPLOAD_LIMIT = 50 * 2**20
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
_TOKEN_IN_TEXT = re.compile(r"bot[0-9]+:[A-Za-z0-9_-]+")


def _as_int(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None


class TelegramAdapter(Adapter):
    """Telegram bots through the Bot API (webhook mode, secret-token header)."""

    name: ClassVar[str] = "telegram"
    native_buttons: ClassVar[bool] = True
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
            field = "photo" if att.kind == "image" and _as_photo(att) else "document"
            if att.data is not None:  # an agent's upload: sent as multipart/form-data
                params = base | {field: att}
            else:
                params = base | {field: att.url or att.file_id}
            if caption:
                params["caption"] = caption
            calls.append((f"send{field.title()}", params))
            caption = None
        if not calls and message.text:
            calls.append(("sendMessage", base | {"text": message.text}))
        if message.buttons and calls:  # under the last part: an inline keyboard, one row
            calls[-1][1]["reply_markup"] = {"inline_keyboard": [[
                {"text": title, "callback_data": data[:64]} for data, title in message.buttons]]}
        if not calls:
            raise DeliveryError(
                "nothing to send: no text, no attachment", retryable=False, code="bad_request"
            )
        results: list[JSON] = []
        for method, params in calls:  # one send per attachment
            try:
                results.append(self.call(method, params)["result"])
            except DeliveryError as e:
                if not results:
                    raise
                # The earlier parts were delivered: a retry would send them twice. Final.
                raise DeliveryError(f"{len(results)} of {len(calls)} parts were sent before: {e}",
                                    retryable=False, code=e.code, uncertain=e.uncertain) from None
        ids = [r["message_id"] for r in results]
        sent_ms = results[0].get("date", 0) * 1000 or time.time_ns() // 1_000_000
        return Receipt(str(ids[0]), sent_ms, {"chat_id": chat_id, "message_ids": ids})

    def call(self, method: str, params: JSON) -> JSON:
        """POST one Bot API method; return its JSON answer or raise ``DeliveryError``. A
        parameter holding an ``Attachment`` with bytes goes as a file of a multipart/form-data
        request (the Bot API's way to upload), the others as form fields (objects as JSON)."""
        token = self.settings.bot_token.get_secret_value()
        files = {k: (v.name or "file", v.data, v.mime or "application/octet-stream")
                 for k, v in params.items() if isinstance(v, Attachment)}
        try:
            if files:
                form = {k: v if isinstance(v, str) else orjson.dumps(v).decode()
                        for k, v in params.items() if k not in files}
                resp = self.http.post(f"{self.settings.api_base}/bot{token}/{method}",
                                      data=form, files=files)
            else:
                resp = self.http.post(f"{self.settings.api_base}/bot{token}/{method}",
                                      json=params)
        except httpx.HTTPError as e:  # uncertain once the request was written
            raise transport_error(e, f"telegram {method}") from None
        try:
            answer = orjson.loads(resp.content)
        except orjson.JSONDecodeError:  # a proxy's HTML error page
            answer = {}
        if resp.status_code == 200 and answer.get("ok"):
            return answer
        raise _delivery_error(method, resp.status_code, answer, token)

    def fetch_file(self, att: Attachment, max_bytes: int) -> FetchedFile | None:
        """``getFile`` for the file's path, then its download URL (bots may download up to
        20 MB: Bot API, getFile). Without a ``file_id`` (a location) there is nothing to get."""
        if not att.file_id or att.kind not in FILE_KINDS:
            return None
        limit = min(max_bytes, DOWNLOAD_LIMIT)
        if att.size and att.size > limit:
            raise DeliveryError(f"telegram getFile: the file is {att.size} bytes; bots may "
                                f"download {limit}", retryable=False, code="too_big")
        info = self.call("getFile", {"file_id": att.file_id})["result"]
        path = info.get("file_path")
        if not path:  # Telegram gives no path for files over the limit
            raise DeliveryError("telegram getFile: no file_path (over 20 MB?)",
                                retryable=False, code="too_big")
        token = self.settings.bot_token.get_secret_value()
        got = download(self.http, f"{self.settings.api_base}/file/bot{token}/{path}", limit,
                       "telegram file download")
        name = att.name or path.rsplit("/", 1)[-1]
        return FetchedFile(got.data, att.mime, name)

    def file_refusal(self, kind: str, mime: str, size: int) -> FileRefusal | None:
        """Bots upload photos up to 10 MB (sendPhoto) and other files up to 50 MB
        (sendDocument); a bigger image goes as a document."""
        if size > UPLOAD_LIMIT:
            return FileRefusal("too_big", f"telegram takes files up to {UPLOAD_LIMIT} bytes",
                               {"platform": self.name, "max_mb": UPLOAD_LIMIT // 2**20})
        return None

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

    def send_file(self, chat_id: int | str, att: Attachment,
                  message_thread_id: int | None = None) -> JSON:
        """Upload a file (``att`` with its bytes) into a chat, a forum topic when
        ``message_thread_id`` is given: an image or a sticker as a photo when it can be one
        (sendPhoto), anything else as a document (sendDocument). Returns the sent Message."""
        field = "photo" if att.kind in ("image", "sticker") and _as_photo(att) else "document"
        params: JSON = {"chat_id": chat_id, field: att}
        if message_thread_id is not None:
            params["message_thread_id"] = message_thread_id
        return self.call(f"send{field.title()}", params)["result"]

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

    def check_credentials(self) -> list[str]:
        """``tongdai channels check``: getMe with the bot token (DeliveryError if refused)."""
        me = self.call("getMe", {})["result"]
        return [f"getMe: the token is bot @{me.get('username') or '?'} (id {me.get('id')})"]

    def registration(self) -> str:
        """Where Telegram delivers this bot's updates (getWebhookInfo), for ``channels list``."""
        info = self.call("getWebhookInfo", {})["result"]
        if not info.get("url"):
            return (f"not registered: tongdai channels telegram set-webhook {self.channel_id} "
                    "--url https://your.host")
        out = f"registered at {info['url']} ({info.get('pending_update_count', 0)} pending)"
        return out + (f"; last error: {info['last_error_message']}"
                      if info.get("last_error_message") else "")

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


def _as_photo(att: Attachment) -> bool:
    """Whether an image goes as a photo (sendPhoto: JPEG/PNG/WebP up to 10 MB), not as a
    document; images by URL or file_id always do."""
    if att.data is None:
        return True
    return (att.mime or "") in PHOTO_TYPES and len(att.data) <= PHOTO_LIMIT


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
