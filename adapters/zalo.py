"""Zalo Official Account adapter: OA webhook events in, consultation messages out.

The Zalo facts this module rests on (sources in docs/connect-zalo.md):

- every id and ``timestamp`` in an event is a string; timestamps are epoch milliseconds;
- a webhook carries ``X-ZEvent-Signature: mac=<hex>``, a plain SHA-256 (not an HMAC) of
  ``id + raw body + timestamp + key``. Public sources disagree on which id and which key: the
  documented ``app_id`` + OA secret key is the default, the others are settings;
- API errors come back inside HTTP 200 as ``{"error": <negative int>, "message": ...}``;
- access tokens last 25 h and refresh tokens are single-use, so a rejected token is rotated
  through ``self.token_store`` (shared by every worker in the hub) and the call retried once;
- users without a Zalo login (``anonymous_send_*``) are answered through another endpoint,
  addressed by their anonymous id *and* the conversation id: our address is
  ``anon:<anonymous_id>:<conversation_id>``.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

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
)
from core.errors import DeliveryError, PayloadError, SignatureError, WindowClosed
from core.models import (
    Attachment,
    Direction,
    EventKind,
    IdentifierClaim,
    InboundEvent,
    RawEvent,
)

JSON = dict[str, Any]
SIGNATURE_HEADER = "X-ZEvent-Signature"
CS_PATH = "/v3.0/oa/message/cs"
# Replies to anonymous users: ``POST /v2.0/oa/message`` with ``recipient: {anonymous_id,
# conversation_id}`` (both required), the message shapes of /message/cs (text up to 2,000
# characters, media template images), ``data.message_id`` in the answer. Sources: the compiled
# "Zalo Platform API — Integration Specification" (index file id 58853812468), §5.6 "Messaging
# anonymous users", §1.5 (this v2.0 path is current; the -240 "MessageV2 shut down" notice is
# about the old user_id message API) and its source index (Zalo page family
# official-account/tin-nhan/cac-loai-tin-khac/gui-tin-nhan-*-den-nguoi-dung-an-danh); a
# community Go client doing the same (index file ids 35219549113, 35843361389: anonymous_id =
# the event's sender.id, conversation_id = its message.conversation_id). No v3.0 form is
# documented.
ANON_PATH = "/v2.0/oa/message"
ANON_PREFIX = "anon:"
PROFILE_PATH = "/v3.0/oa/user/detail"
TOKEN_PATH = "/v4/oa/access_token"
MAX_TEXT = 2000  # characters per consultation message (OA API, send a consultation message)
MAX_WINDOW_HOURS = 168  # Zalo refuses consultation messages 7 days after the last interaction
_DIGITS = re.compile(r"[0-9]{6,25}")
_MAC = re.compile(r"\s*(?:mac\s*=\s*)?([0-9a-fA-F]{64})\s*", re.IGNORECASE)
SIGNATURE_VARIANTS: tuple[tuple[str, str], ...] = (
    ("app_id", "oa_secret_key"),
    ("app_id", "app_secret"),
    ("oa_id", "oa_secret_key"),
    ("oa_id", "app_secret"),
)


class ZaloSettings(ChannelSettings):
    """Settings of one Zalo OA channel (one Zalo app linked to one OA)."""

    # A failed validation must not echo secrets into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    oa_id: str
    app_id: str
    oa_secret_key: SecretStr
    app_secret: SecretStr
    access_token: SecretStr  # the initial pair; rotated pairs live in the token store
    refresh_token: SecretStr
    api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    reply_window_hours: float = 48
    signature_key: Literal["oa_secret_key", "app_secret"] = "oa_secret_key"
    signature_id: Literal["app_id", "oa_id"] = "app_id"

    @field_validator("oa_id", "app_id", mode="before")
    @classmethod
    def _numeric_id(cls, v: Any, info: Any) -> str:
        # YAML reads an unquoted id as an int: accept it, it is the same id.
        v = str(v).strip() if isinstance(v, int | str) and not isinstance(v, bool) else v
        if not isinstance(v, str) or not _DIGITS.fullmatch(v):
            where = (
                "developers.zalo.me → your app → Settings (App ID)"
                if info.field_name == "app_id"
                else "oa.zalo.me → Settings → OA information (OA ID)"
            )
            raise ValueError(
                f"{info.field_name} is the numeric id Zalo shows in {where}, "
                'e.g. "3608465248940903967"; quote it in YAML'
            )
        return v

    @field_validator("oa_secret_key", "app_secret", "access_token", "refresh_token")
    @classmethod
    def _secret_shape(cls, v: SecretStr, info: Any) -> SecretStr:
        s = v.get_secret_value()
        if not s or any(c.isspace() for c in s):
            raise ValueError(
                f"{info.field_name} must be non-empty and without spaces: paste it "
                "exactly as Zalo shows it (see docs/connect-zalo.md)"
            )
        return v

    @field_validator("api_base", "oauth_base")
    @classmethod
    def _base_shape(cls, v: str, info: Any) -> str:
        if not v.startswith(("http://", "https://")):
            default = {
                "api_base": "https://openapi.zalo.me",
                "oauth_base": "https://oauth.zaloapp.com",
            }[info.field_name]
            raise ValueError(f"{info.field_name} must be an http(s) URL, e.g. {default}")
        return v.rstrip("/")

    @field_validator("reply_window_hours")
    @classmethod
    def _window(cls, v: float) -> float:
        if not 0 < v <= MAX_WINDOW_HOURS:  # also false for NaN
            raise ValueError(
                f"reply_window_hours must be more than 0 and at most {MAX_WINDOW_HOURS}: replies "
                "are free for 48 h and refused by Zalo (error -230) after 7 days"
            )
        return v


# -- reading events ------------------------------------------------------------------------------
def _load(body: bytes) -> JSON:
    event = load_json_object(body, "Zalo event")
    if not isinstance(event.get("event_name"), str) or not event["event_name"]:
        raise PayloadError("a Zalo event names itself in 'event_name'; this body has none")
    return event


def _ts_ms(raw: Any, received_ms: int) -> int:
    """Zalo's string timestamp in ms. The docs' own samples carry truncated ones
    ("154390853474", 12 digits): anything that is not a plausible time is replaced by ours."""
    try:
        v = int(str(raw))
    except (TypeError, ValueError):
        return received_ms
    if 10**12 <= v < 10**14:
        return v
    if 10**9 <= v < 10**10:  # seconds
        return v * 1000
    return received_ms


def _stamp(event: JSON, body: bytes) -> str:
    """The event's timestamp as sent (a dedupe key part), or the body's hash when it has none:
    a redelivery repeats the body byte for byte."""
    ts = event.get("timestamp")
    if ts is not None and str(ts):
        return str(ts)
    return "h" + hashlib.blake2b(body, digest_size=8).hexdigest()


def _id_of(event: JSON, field: str) -> str:
    value = _maybe_id(event, field)
    if value is None:
        raise PayloadError(f"Zalo {event['event_name']} lacks {field}.id")
    return value


def _maybe_id(event: JSON, field: str) -> str | None:
    """``event[field].id`` when there is one (for the OA's side, whose absence is no error)."""
    obj = event.get(field)
    return _plain_id(obj.get("id") if isinstance(obj, dict) else None)


def _plain_id(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool) or str(value) == "":
        return None
    return str(value)


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _json_object(text: Any) -> JSON:
    """Business cards carry their phone inside a JSON string (``payload.description``)."""
    if not isinstance(text, str):
        return {}
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _pick(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if v not in (None, "")}


# attachment ``type`` -> our Attachment.kind (docs: image/gif/link/audio/video/sticker/location/file)
_KIND = {t: t for t in ("image", "link", "audio", "video", "sticker", "location", "file")}
_KIND["gif"] = "animation"
_MESSAGE_TYPES = (*_KIND, "text", "business_card")
# Exact names: ``user_send_group_*`` (group chats) and ``oa_send_consent`` (calls) share
# the prefixes but are other things, so they stay UNSUPPORTED.
USER_MESSAGES = frozenset(f"user_send_{t}" for t in _MESSAGE_TYPES)
ANONYMOUS_MESSAGES = frozenset(f"anonymous_send_{t}" for t in ("text", "image", "file", "sticker"))
OA_MESSAGES = frozenset(f"oa_send_{t}" for t in (*_MESSAGE_TYPES, "list"))


def _attachment(att: JSON, message_type: str, text: str | None) -> Attachment:
    payload = att.get("payload") if isinstance(att.get("payload"), dict) else {}
    kind_of = str(att.get("type") or message_type)
    # A business card arrives as a "link" attachment; the event name says what it is.
    kind = "contact" if message_type == "business_card" else _KIND.get(kind_of, kind_of)
    url = payload.get("url") or None
    if kind == "location":
        coords = payload.get("coordinates") if isinstance(payload.get("coordinates"), dict) else {}
        meta = _pick({k: _float(coords.get(k)) for k in ("latitude", "longitude")})
        return Attachment("location", meta=meta)
    if kind == "contact":
        card = _json_object(payload.get("description"))
        meta = _pick(
            {
                "name": text,
                "phone": card.get("phone"),
                "qr_code_url": card.get("qrCodeUrl"),
                "thumbnail": payload.get("thumbnail"),
            }
        )
        return Attachment("contact", url=url, meta=meta)
    if kind == "file":
        meta = _pick({"extension": payload.get("type"), "checksum": payload.get("checksum")})
        return Attachment(
            "file",
            url=url,
            name=payload.get("name") or None,
            size=_int(payload.get("size")),
            meta=meta,
        )
    if kind == "sticker":
        sticker_id = payload.get("id")
        return Attachment("sticker", url=url, file_id=str(sticker_id) if sticker_id else None)
    meta = _pick({k: payload.get(k) for k in ("thumbnail", "title", "description")})
    return Attachment(kind, url=url, meta=meta)


def _message(event: JSON, name: str, received_ms: int) -> InboundEvent:
    msg = event.get("message")
    if not isinstance(msg, dict) or not msg.get("msg_id"):
        raise PayloadError(f"Zalo {name} lacks message.msg_id")
    msg_id = str(msg["msg_id"])
    out = name in OA_MESSAGES
    who = _id_of(event, "recipient" if out else "sender")  # the customer, either way
    address = who
    if name in ANONYMOUS_MESSAGES:  # replies need the conversation too (see ANON_PATH)
        conversation = _plain_id(msg.get("conversation_id"))
        # Without one the message is still kept; a reply is refused with the reason (send).
        address = f"{ANON_PREFIX}{who}:{conversation or ''}"
    text = msg.get("text") if isinstance(msg.get("text"), str) and msg.get("text") else None
    message_type = name.split("_send_", 1)[1]
    raw_atts = msg.get("attachments") or []
    if not isinstance(raw_atts, list):
        raise PayloadError(f"Zalo {name} message.attachments is not a list")
    atts = [_attachment(a, message_type, text) for a in raw_atts if isinstance(a, dict)]
    quote = msg.get("quote_msg_id")
    return InboundEvent(
        EventKind.MESSAGE,
        f"m:{msg_id}",
        who,
        _ts_ms(event.get("timestamp"), received_ms),
        address=address,
        external_message_id=msg_id,
        direction=Direction.OUT if out else Direction.IN,
        text=text,
        attachments=atts,
        reply_to=f"m:{quote}" if quote else None,
        platform_type=name,
        account_id=_maybe_id(event, "sender" if out else "recipient"),  # the OA, either way
    )


def _follow(event: JSON, name: str, received_ms: int, stamp: str) -> InboundEvent:
    field = "follower" if isinstance(event.get("follower"), dict) else "sender"
    user = _id_of(event, field)
    kind = EventKind.FOLLOW if name == "follow" else EventKind.UNFOLLOW
    return InboundEvent(
        kind,
        f"f:{user}:{stamp}:{name}",
        user,
        _ts_ms(event.get("timestamp"), received_ms),
        address=user,
        platform_type=name,
        # follow/unfollow name the OA in a top-level "oa_id" (docs sample and a live capture)
        account_id=_plain_id(event.get("oa_id")) or _maybe_id(event, "recipient"),
    )


def _submit_info(event: JSON, name: str, received_ms: int, stamp: str) -> InboundEvent:
    user = _id_of(event, "sender")
    info = event.get("info")
    if not isinstance(info, dict):
        raise PayloadError("Zalo user_submit_info lacks its 'info' object")
    # Newer payloads nest the address in full_address {user_address, user_ward, ...}.
    addr = info.get("full_address") if isinstance(info.get("full_address"), dict) else {}
    meta = _pick(
        {
            "name": info.get("name"),
            "phone": info.get("phone"),
            "address": addr.get("user_address") or info.get("address"),
            "ward": addr.get("user_ward") or info.get("ward"),
            "district": addr.get("user_district") or info.get("district"),
            "city": addr.get("user_city") or info.get("city"),
            "dob": info.get("user_dob"),
            "gender": info.get("gender"),
        }
    )
    phone = str(info["phone"]) if info.get("phone") else None
    return InboundEvent(
        EventKind.CONTACT_SHARED,
        f"i:{user}:{stamp}",
        user,
        _ts_ms(event.get("timestamp"), received_ms),
        address=user,
        attachments=[Attachment("contact", meta=meta)],
        # The user sent it through Zalo's own request_user_info form, from their account.
        identifier=IdentifierClaim("phone", phone, True, "zalo_user_submit_info")
        if phone
        else None,
        platform_type=name,
        account_id=_maybe_id(event, "recipient"),
    )


def _guess_customer(event: JSON, oa_id: str) -> str:
    """Who an event is about when we do not know its shape: anyone but our own OA."""
    tag = event.get("tag") if isinstance(event.get("tag"), dict) else {}
    candidates = [
        (event.get(f) or {}).get("id") if isinstance(event.get(f), dict) else None
        for f in ("follower", "sender", "recipient", "user")
    ]
    candidates += [event.get("user_id"), (tag.get("user_ids") or [None])[0]]
    return next((str(c) for c in candidates if c and str(c) != oa_id), "unknown")


class ZaloAdapter(Adapter):
    """One Zalo Official Account, through the OA OpenAPI v3 and OAuth v4."""

    name: ClassVar[str] = "zalo"
    Settings: ClassVar[type[ChannelSettings]] = ZaloSettings
    # ZNS events add ``X-ZEvent-Server: ZNS``; retries add ``num_retry``. Neither is secret.
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type", "x-zevent-server", "num_retry")
    settings: ZaloSettings

    # -- inbound ------------------------------------------------------------------------------
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Check ``X-ZEvent-Signature`` (plain SHA-256 of id + body + timestamp + key)."""
        got = header(headers, SIGNATURE_HEADER)
        if not got:
            raise SignatureError(f"no {SIGNATURE_HEADER} header: not a request from Zalo")
        m = _MAC.fullmatch(got)
        if m is None:
            raise SignatureError(f"{SIGNATURE_HEADER} is not 'mac=<64 hex digits>'")
        mac, ts = m.group(1).lower(), _signed_timestamp(body)
        if ts is None:
            raise SignatureError(f"the body has no timestamp to check {SIGNATURE_HEADER} with")
        s = self.settings
        if constant_time_equal(mac, signature(s, body, ts, s.signature_id, s.signature_key)):
            return
        # Only Zalo can produce a signature any variant accepts: naming it helps, leaks nothing.
        fits = [
            v
            for v in SIGNATURE_VARIANTS
            if v != (s.signature_id, s.signature_key)
            and constant_time_equal(mac, signature(s, body, ts, *v))
        ]
        hint = (
            f"; it matches signature_id: {fits[0][0]}, signature_key: {fits[0][1]}: set "
            "those in the channel settings"
            if fits
            else "; check oa_secret_key/app_secret and signature_id/signature_key "
            "(docs/connect-zalo.md)"
        )
        raise SignatureError(f"{SIGNATURE_HEADER} does not match this channel{hint}")

    def check_body(self, body: bytes) -> None:
        """Reject bodies that are not a JSON object naming an ``event_name``."""
        _load(body)

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """One webhook request is one Zalo event: one normalised event out."""
        event = _load(raw.body)
        name, received = event["event_name"], raw.received_ts_ms
        stamp = _stamp(event, raw.body)
        try:
            if name in USER_MESSAGES or name in OA_MESSAGES or name in ANONYMOUS_MESSAGES:
                return [_message(event, name, received)]
            if name in ("follow", "unfollow"):
                return [_follow(event, name, received, stamp)]
            if name == "user_submit_info":
                return [_submit_info(event, name, received, stamp)]
            if name in ("user_received_message", "user_seen_message"):
                return [self._receipt(event, name, received, stamp)]
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise PayloadError(f"Zalo {name} is malformed ({type(e).__name__}: {e})") from None
        digest = hashlib.blake2b(raw.body, digest_size=8).hexdigest()
        return [
            InboundEvent(
                EventKind.UNSUPPORTED,
                f"u:{name}:{event.get('timestamp') or ''}:{digest}",
                _guess_customer(event, self.settings.oa_id),
                _ts_ms(event.get("timestamp"), received),
                platform_type=name,
                # Only a top-level OA id says whose it is: sender/recipient sides are unknown.
                account_id=_plain_id(event.get("oa_id", event.get("oaId"))),
            )
        ]

    def _receipt(self, event: JSON, name: str, received_ms: int, stamp: str) -> InboundEvent:
        """Delivered/seen: the OA sent the original, so the customer is the recipient."""
        msg = event.get("message")
        if not isinstance(msg, dict):
            raise PayloadError(f"Zalo {name} lacks its 'message' object")
        # user_seen_message lists msg_ids; user_received_message names one msg_id.
        ids = msg.get("msg_ids") if "msg_ids" in msg else [msg.get("msg_id")]
        if (
            not isinstance(ids, list)
            or not ids
            or not all(isinstance(i, str | int) and str(i) for i in ids)
        ):
            raise PayloadError(f"Zalo {name} has no message ids (message.msg_ids / msg_id)")
        user, oa = _id_of(event, "recipient"), _maybe_id(event, "sender")
        if user == self.settings.oa_id:  # shape flipped: the other side is the customer
            user, oa = _id_of(event, "sender"), user
        seen = name == "user_seen_message"
        # ZNS receipts carry the real delivery time in message.delivery_time.
        when = msg.get("delivery_time") or event.get("timestamp")
        return InboundEvent(
            EventKind.READ if seen else EventKind.DELIVERY,
            f"{'s' if seen else 'd'}:{user}:{stamp}",
            user,
            _ts_ms(when, received_ms),
            address=user,
            target_ids=list(dict.fromkeys(f"m:{i}" for i in ids)),
            platform_type=name,
            account_id=oa,
        )

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        """A consultation message: text, images by URL, other files as links in the text.
        An ``anon:`` address goes to the anonymous-user endpoint, the same way."""
        self._check_window(message)
        parts = _plan(message)
        if message.address.startswith(ANON_PREFIX):
            recipient, path, what = _anonymous(message.address), ANON_PATH, "anonymous message"
        else:
            recipient, path, what = {"user_id": message.address}, CS_PATH, "message/cs"
        ids: list[str] = []
        quota: Any = None
        sent_ms = time.time_ns() // 1_000_000
        for part in parts:
            body = {"recipient": recipient, "message": part}
            try:
                data = self._call("POST", path, what, json=body)
            except DeliveryError as exc:
                if not ids:
                    raise
                # Retrying would send the earlier parts twice: fail and say what went out.
                raise DeliveryError(
                    f"{exc} (after {len(ids)} of {len(parts)} parts were sent; "
                    "not retried, to avoid duplicates)",
                    retryable=False,
                    code=exc.code,
                ) from None
            if not data.get("message_id"):
                raise DeliveryError(
                    f"zalo {what}: Zalo accepted the message but returned no message_id",
                    retryable=False,
                    code="bad_response",
                )
            if not ids:
                sent_ms = _int(data.get("sent_time")) or sent_ms
            ids.append(str(data["message_id"]))
            quota = data.get("quota", quota)
        raw: JSON = {**recipient, "message_ids": ids}
        if quota is not None:  # Zalo's count of free replies left, worth seeing in the log
            raw["quota"] = quota
        return Receipt(ids[0], sent_ms, raw)

    def sent_dedupe_keys(self, message: OutboundMessage, receipt: Receipt) -> list[str]:
        """Zalo echoes our sends as ``oa_send_*`` and receipts name them: ``m:<msg_id>``."""
        ids = receipt.raw.get("message_ids") or [receipt.external_id]
        return [f"m:{i}" for i in ids]

    @property
    def account_id(self) -> str | None:
        """The OA: an app linked to several OAs posts all their events to one webhook URL."""
        return self.settings.oa_id

    def _check_window(self, message: OutboundMessage) -> None:
        """Refuse before calling Zalo when the configured window has passed (the core checks
        ``window()`` before queuing; a message can wait in the queue past the deadline)."""
        if message.last_inbound_ts_ms is None:
            return
        state = self.window(
            message.last_inbound_ts_ms, time.time_ns() // 1_000_000, message.author_kind
        )
        if not state.open:
            raise WindowClosed(
                f"zalo: {state.reason}; not sent (reply_window_hours in the channel settings)"
            )

    def fetch_profile(self, external_user_id: str) -> dict[str, Any] | None:
        """``display_name`` and ``avatar`` from ``/v3.0/oa/user/detail``; None on any error."""
        params = {"data": orjson.dumps({"user_id": external_user_id}).decode()}
        try:
            data = self._call("GET", PROFILE_PATH, "user/detail", params=params)
        except DeliveryError:
            return None
        profile = _pick(
            {
                "name": data.get("display_name") or data.get("user_alias"),
                "picture": data.get("avatar"),
            }
        )
        return profile or None

    def facts(self) -> ChannelFacts:
        """Free replies for ``reply_window_hours``; 4,000 API calls a minute per app; phones
        shared through Zalo's form are vouched for; retries end within 2 h (kept 24 h)."""
        return ChannelFacts(
            reply_window_s=self.settings.reply_window_hours * 3600,
            human_agent_window_s=None,
            rate_limits=(RateLimit("channel", 4000, 60.0),),
            verifiable_identifiers=frozenset({"phone"}),
            redelivery_horizon_s=86400,
        )

    # -- tokens -------------------------------------------------------------------------------
    def exchange_code(self, code: str, code_verifier: str | None = None) -> dict[str, str]:
        """Trade an OAuth v4 authorization code for the OA's token pair and store it."""
        form = {"code": code, "app_id": self.settings.app_id, "grant_type": "authorization_code"}
        if code_verifier:
            form["code_verifier"] = code_verifier
        fix = (
            "authorization codes are single-use and expire after 10 minutes: have an OA admin "
            "open the app's consent link again, then run `tongdai channels zalo authorize "
            f"{self.channel_id} --code CODE` with the new code"
        )
        pair = self._token_request(form, "exchanging the authorization code", fix, [code])
        self.token_store.save(pair)
        return pair

    def _refresh(self, refresh_token: str) -> dict[str, str]:
        """Rotate the pair (called by the token store, under its lock). The refresh token is
        single-use: after this call only the returned pair is valid."""
        refresh_token = refresh_token or self.settings.refresh_token.get_secret_value()
        form = {
            "refresh_token": refresh_token,
            "app_id": self.settings.app_id,
            "grant_type": "refresh_token",
        }
        fix = (
            "the refresh token is used up or expired (they are single-use and last 3 months); "
            "an OA admin must authorize the app again: open the app's consent link, then run "
            f"`tongdai channels zalo authorize {self.channel_id} --code CODE`"
        )
        return self._token_request(form, "refreshing the access token", fix, [refresh_token])

    def _token_request(
        self, form: dict[str, str], what: str, fix: str, extra_secrets: list[str]
    ) -> dict[str, str]:
        headers = {"secret_key": self.settings.app_secret.get_secret_value()}
        try:
            resp = self.http.post(
                f"{self.settings.oauth_base}{TOKEN_PATH}", data=form, headers=headers
            )
        except httpx.HTTPError as e:
            code = "timeout" if isinstance(e, httpx.TimeoutException) else "network"
            raise DeliveryError(
                f"zalo {what}: {code} ({type(e).__name__})", retryable=True, code=code
            ) from None
        answer = _json(resp)
        if resp.status_code >= 500 or (resp.status_code == 200 and answer is None):
            raise DeliveryError(
                f"zalo {what}: HTTP {resp.status_code} from the OAuth server",
                retryable=True,
                code="server_error",
            )
        answer = answer or {}
        if answer.get("access_token") and answer.get("refresh_token"):
            return {
                "access_token": str(answer["access_token"]),
                "refresh_token": str(answer["refresh_token"]),
            }
        scrub = self._scrubber(extra_secrets)
        why = " ".join(
            str(answer.get(k))
            for k in ("error", "error_name", "error_reason", "error_description")
            if answer.get(k)
        )
        why = scrub(why or f"HTTP {resp.status_code}")
        raise DeliveryError(
            f"zalo {what} failed (Zalo: {why}): {fix}", retryable=False, code="unauthorized"
        )

    def _token(self) -> str:
        pair = self.token_store.current() or {}
        return pair.get("access_token") or self.settings.access_token.get_secret_value()

    def _rotate(self, used: str) -> str:
        try:
            pair = self.token_store.rotate(used, self._refresh)  # DeliveryError passes through
        except RuntimeError:  # the store's lock stayed taken (core.credentials.RotationBusy)
            raise DeliveryError(
                "zalo: another worker is still rotating the access token",
                retryable=True,
                code="token_rotation",
            ) from None
        if not pair.get("access_token"):
            raise DeliveryError(
                "zalo: the token store returned no access token",
                retryable=False,
                code="unauthorized",
            )
        return pair["access_token"]

    # -- calling the OpenAPI --------------------------------------------------------------------
    def _call(self, method: str, path: str, what: str, **kw: Any) -> JSON:
        """One OpenAPI call; an invalid token is rotated and the call retried once."""
        token = self._token()
        answer = self._request(method, path, what, token, **kw)
        if answer.get("error") in TOKEN_ERRORS:
            token = self._rotate(token)
            answer = self._request(method, path, what, token, **kw)
            if answer.get("error") in TOKEN_ERRORS:
                raise DeliveryError(
                    f"zalo {what}: the access token was rejected again right after a refresh: "
                    "check that app_id/app_secret belong to the app the OA authorized, then run "
                    f"`tongdai channels zalo authorize {self.channel_id} --code CODE`",
                    retryable=False,
                    code="unauthorized",
                )
        if answer.get("error") == 0:
            data = answer.get("data")
            return data if isinstance(data, dict) else {}
        raise _api_error(what, answer, self._scrubber([token]))

    def _request(self, method: str, path: str, what: str, token: str, **kw: Any) -> JSON:
        # The token goes in a header, never the URL: httpx logs URLs.
        try:
            resp = self.http.request(
                method, f"{self.settings.api_base}{path}", headers={"access_token": token}, **kw
            )
        except httpx.HTTPError as e:  # never pass httpx's text on: it may quote the URL
            code = "timeout" if isinstance(e, httpx.TimeoutException) else "network"
            raise DeliveryError(
                f"zalo {what}: {code} ({type(e).__name__})", retryable=True, code=code
            ) from None
        status, answer = resp.status_code, _json(resp)
        if status == 429:
            raise DeliveryError(
                f"zalo {what}: HTTP 429", retryable=True, retry_after=60, code="rate_limited"
            )
        if status >= 500 or (status == 200 and answer is None):  # a proxy's error page
            raise DeliveryError(
                f"zalo {what}: HTTP {status} without a Zalo answer",
                retryable=True,
                code="server_error",
            )
        if status != 200:
            raise DeliveryError(f"zalo {what}: HTTP {status}", retryable=False, code="bad_request")
        if "error" not in answer:
            raise DeliveryError(
                f"zalo {what}: an answer without an error field",
                retryable=True,
                code="server_error",
            )
        return answer

    def _scrubber(self, extra: list[str]) -> Callable[[str], str]:
        s = self.settings
        known = [
            v.get_secret_value()
            for v in (s.access_token, s.refresh_token, s.app_secret, s.oa_secret_key)
        ]
        known += list((self.token_store.current() or {}).values()) + extra

        def scrub(text: str) -> str:
            for secret in known:
                if secret and len(secret) >= 6:
                    text = text.replace(secret, "<secret>")
            return text

        return scrub

    # -- for newcomers and tests ----------------------------------------------------------------
    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        """A signed ``user_send_text`` as Zalo would POST it. Zalo events carry no names
        (``fetch_profile`` finds them), so ``name`` is not in the body."""
        now_ns = time.time_ns()
        event = {
            "app_id": self.settings.app_id,
            "sender": {"id": str(user_id)},
            "recipient": {"id": self.settings.oa_id},
            "event_name": "user_send_text",
            "message": {"text": text, "msg_id": f"{now_ns:x}"[-20:].rjust(20, "0")},
            "timestamp": str(now_ns // 1_000_000),
        }
        body = orjson.dumps(event)
        s = self.settings
        mac = signature(s, body, event["timestamp"], s.signature_id, s.signature_key)
        return {SIGNATURE_HEADER: f"mac={mac}", "Content-Type": "application/json"}, body


# Codes that mean "this access token is no good": refresh and retry once.
TOKEN_ERRORS = frozenset({-216, -220, -124})
_WINDOW_CODES = frozenset({-230, -232})
_BLOCKED_CODES = frozenset({-213, -217, -227, -244})
_QUOTA_CODES = frozenset({-211, -218})
# The app or OA is not set up for this call: a person must fix the configuration.
_SETUP_CODES = frozenset({-204, -205, -209, -212, -219, -221, -223, -224, -235, -240, -242})


def _api_error(what: str, answer: JSON, scrub: Callable[[str], str]) -> DeliveryError:
    """Map a Zalo ``{"error": <code>, "message": ...}`` answer to a DeliveryError."""
    code = answer.get("error")
    text = f"zalo {what}: error {code} {scrub(str(answer.get('message') or ''))}".rstrip()
    if code in _WINDOW_CODES:
        return WindowClosed(
            f"{text}: the user has not interacted with the OA for 7 days; Zalo "
            "accepts consultation messages only within that window"
        )
    if code in _BLOCKED_CODES:
        return DeliveryError(text, retryable=False, code="blocked")
    if code == -32:  # per-minute API limit of the app or the OA
        return DeliveryError(text, retryable=True, retry_after=60, code="rate_limited")
    if code in _QUOTA_CODES:
        return DeliveryError(text, retryable=True, retry_after=3600, code="quota_exceeded")
    if code == -200:  # "Send message failed": Zalo's own transient failure
        return DeliveryError(text, retryable=True, code="server_error")
    if code in _SETUP_CODES:
        return DeliveryError(
            f"{text}: the app or OA is not set up for this (docs/connect-zalo.md)",
            retryable=False,
            code="unauthorized",
        )
    return DeliveryError(text, retryable=False, code="bad_request")  # -201 and the unknown


def _json(resp: httpx.Response) -> JSON | None:
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def _anonymous(address: str) -> JSON:
    """The recipient of ``anon:<anonymous_id>:<conversation_id>``: Zalo needs both ids."""
    _, anonymous_id, conversation_id = (address.split(":", 2) + ["", ""])[:3]
    if not anonymous_id or not conversation_id:
        raise DeliveryError(
            "zalo: this anonymous user's conversation_id is unknown (their message carried "
            "none), and Zalo answers anonymous users only with both ids; not sent",
            retryable=False,
            code="bad_request",
        )
    return {"anonymous_id": anonymous_id, "conversation_id": conversation_id}


def _media(url: str) -> JSON:
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "media",
                "elements": [{"media_type": "image", "url": url}],
            },
        }
    }


def _split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut text into messages Zalo accepts, at a line break when there is one."""
    chunks = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        cut = cut if cut > 0 else limit
        chunks.append(text[:cut])
        text = text[cut:].removeprefix("\n")
    return [*chunks, text] if text else chunks


def _plan(message: OutboundMessage) -> list[JSON]:
    """The ``message`` objects to send, in order. Zalo sends files only by an upload token
    (``/v2.0/oa/upload/file``, PDF/DOC/CSV, 5 MB, 7 days): files go as links in the text."""
    if unsendable := [a for a in message.attachments if not a.url]:
        raise DeliveryError(
            f"zalo sends attachments by URL; {unsendable[0].kind} "
            f"{unsendable[0].name or unsendable[0].file_id or ''} has none",
            retryable=False,
            code="bad_request",
        )
    images = [a.url for a in message.attachments if a.kind == "image"]
    links = [
        f"{a.name}: {a.url}" if a.name else a.url for a in message.attachments if a.kind != "image"
    ]
    # NFC first: Zalo counts characters, and decomposed Vietnamese is longer.
    text = unicodedata.normalize("NFC", message.text or "")
    chunks = _split("\n".join(p for p in (text, *links) if p))
    if images and len(chunks) <= 1:  # the text rides with the first image
        first = _media(images[0]) | ({"text": chunks[0]} if chunks else {})
        parts = [first, *(_media(u) for u in images[1:])]
    else:
        parts = [{"text": c} for c in chunks] + [_media(u) for u in images]
    if not parts:
        raise DeliveryError(
            "nothing to send: no text, no attachment", retryable=False, code="bad_request"
        )
    return parts


def _signed_timestamp(body: bytes) -> str | None:
    """The body's ``timestamp`` as the string Zalo signed."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    ts = event.get("timestamp", event.get("timeStamp")) if isinstance(event, dict) else None
    if ts is None or isinstance(ts, dict | list | bool):
        return None
    return str(ts)


def signature(
    settings: ZaloSettings, body: bytes, timestamp: str, id_field: str, key_field: str
) -> str:
    """``sha256(id + body + timestamp + key)`` in hex, for one variant of the formula."""
    key = getattr(settings, key_field).get_secret_value()
    ident = getattr(settings, id_field)
    return hashlib.sha256(ident.encode() + body + timestamp.encode() + key.encode()).hexdigest()


def matching_variants(
    settings: ZaloSettings, headers: Mapping[str, str], body: bytes
) -> list[tuple[str, str]]:
    """Which (signature_id, signature_key) pairs accept a captured request: to find out
    how your OA signs (docs/connect-zalo.md)."""
    got, ts = header(headers, SIGNATURE_HEADER) or "", _signed_timestamp(body)
    m = _MAC.fullmatch(got)
    if m is None or ts is None:
        return []
    mac = m.group(1).lower()
    return [
        v for v in SIGNATURE_VARIANTS if constant_time_equal(mac, signature(settings, body, ts, *v))
    ]
