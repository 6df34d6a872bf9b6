"""The contract every platform adapter implements.

A channel *instance* in ``config/tongdai.yaml`` names its adapter and carries settings; the
adapter's ``Settings`` model validates them at start-up. The registry (``core/registry.py``)
resolves adapter names: built-in name, then the ``tongdai.adapters`` entry-point group, then a
``package.module:Class`` path.
"""

from __future__ import annotations

import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

# FILE_KINDS, download, transport_error: re-exported, adapters import them from here
from tongdai.adapters.files import FILE_KINDS, FetchedFile, FileRefusal  # noqa: F401
from tongdai.adapters.http import download, redact_http_logs, transport_error  # noqa: F401
from tongdai.core.errors import PayloadError
from tongdai.core.models import Attachment, AuthorKind, InboundEvent, RawEvent


class ChannelSettings(BaseModel):
    """Base of adapter settings models: unknown keys are mistakes, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def must_match(*fields: str, pattern: str, advice: str) -> Any:
    """A settings validator: each field (text or secret) must fully match ``pattern``; else
    ``advice`` (what the value looks like and where to find it) reaches the admin."""
    rx = re.compile(pattern)

    def check(cls: type, v: Any) -> Any:
        raw = v.get_secret_value() if isinstance(v, SecretStr) else v
        if not isinstance(raw, str) or not rx.fullmatch(raw):
            raise ValueError(advice)
        return v

    return field_validator(*fields)(classmethod(check))


def http_base(*fields: str, example: str) -> Any:
    """A settings validator for API base URLs: http(s), no trailing slash."""

    def check(cls: type, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, e.g. {example}")
        return v.rstrip("/")

    return field_validator(*fields)(classmethod(check))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``count`` sends per ``per_seconds``, per ``scope`` (``address`` or ``channel``)."""

    scope: str
    count: int
    per_seconds: float


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    """What a platform allows, asked by the core instead of hard-coding platform names."""

    # Free replies are allowed for this long after the customer's last message (None: always).
    reply_window_s: float | None = None
    # Human agents may still reply up to this long (Meta's HUMAN_AGENT tag); None: same as above.
    human_agent_window_s: float | None = None
    rate_limits: tuple[RateLimit, ...] = ()
    # Identifier kinds this platform can vouch for as belonging to the sender.
    verifiable_identifiers: frozenset[str] = frozenset()
    # How long the platform may redeliver an event: dedupe entries must outlive it.
    redelivery_horizon_s: float | None = None
    # True when the platform drops a resend that carries the same idempotency key (our message
    # id): a send that got no answer is then simply tried again. False (every built-in
    # platform): such a send is tried once more only, later, and the agent is told it may
    # arrive twice (docs/decisions.md, "Replies first").
    idempotent_sends: bool = False


@dataclass(slots=True)
class OutboundMessage:
    """A reply to send. ``idempotency_key`` is our message id: the same key, one send."""

    address: str
    text: str | None
    author_kind: AuthorKind
    idempotency_key: str
    attachments: list[Attachment] = field(default_factory=list)
    reply_to_external_id: str | None = None
    # When the customer last wrote on this channel (ms): platforms whose message type depends
    # on the window (Meta's RESPONSE vs HUMAN_AGENT tag) need it.
    last_inbound_ts_ms: int | None = None
    # Mail threading, filled by the core for adapters with ``threads_by_reference``.
    conversation_id: str | None = None
    subject: str | None = None
    references: list[str] = field(default_factory=list)
    in_reply_to: str | None = None
    reply_token: str | None = None  # for a reply+<token>@ address
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (payload, title) to press


@dataclass(slots=True)
class Receipt:
    """What the platform answered to a successful send."""

    external_id: str
    sent_ts_ms: int
    raw: dict[str, Any] = field(default_factory=dict)


class TokenStore(Protocol):
    """Where an adapter keeps OAuth tokens that rotate (Zalo's single-use refresh tokens).

    The core implements it on Redis (``core/credentials.py``): shared by every worker, rotation
    under a lock released only by its owner, the new pair persisted before anyone uses it.
    """

    def current(self) -> dict[str, str] | None:
        """The latest stored pair (``access_token``, ``refresh_token``), or None."""

    def rotate(self, used_access_token: str,
               refresh: Callable[[str], dict[str, str]]) -> dict[str, str]:
        """Replace the pair whose access token was just rejected.

        Under the lock: when the stored access token is no longer ``used_access_token``
        (another worker rotated meanwhile), return the stored pair without calling ``refresh``;
        else call ``refresh(refresh_token)``, persist its pair, and return it.
        """

    def save(self, pair: dict[str, str]) -> None:
        """Store a pair obtained otherwise (an authorization code exchange)."""


class MemoryTokenStore:
    """A TokenStore for one process (tests, tools); the hub uses the Redis one."""

    def __init__(self, pair: dict[str, str] | None = None) -> None:
        self.pair = dict(pair) if pair else None

    def current(self) -> dict[str, str] | None:
        return self.pair

    def rotate(self, used_access_token: str,
               refresh: Callable[[str], dict[str, str]]) -> dict[str, str]:
        if self.pair and self.pair.get("access_token") != used_access_token:
            return self.pair
        self.pair = refresh((self.pair or {}).get("refresh_token", ""))
        return self.pair

    def save(self, pair: dict[str, str]) -> None:
        self.pair = dict(pair)


@dataclass(slots=True)
class WindowState:
    """Whether a reply can go out on this channel now, and why not when it cannot."""

    open: bool
    reason: str = ""
    # what the console translates: never_wrote, window_closed (+ ``detail``)
    code: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """One platform. Subclasses set ``name`` and ``Settings`` and implement the methods."""

    name: ClassVar[str]
    Settings: ClassVar[type[ChannelSettings]]
    # Request headers worth keeping in the raw log (lower-case). Never secrets.
    kept_headers: ClassVar[tuple[str, ...]] = ("content-type",)
    # (pattern, replacement) masking this platform's secrets where its API URLs carry them:
    # installed on httpx's request log by the base constructor, once per pattern.
    log_redaction: ClassVar[tuple[re.Pattern[str], str] | None] = None
    # True when the platform's user ids are personal data (a mail address): the core then
    # stores a blind index as the user id and encrypts the reply address.
    user_ids_are_personal: ClassVar[bool] = False
    # True for mail: replies carry Subject / References / In-Reply-To / a reply token, which
    # the core works out from the conversation before each send.
    threads_by_reference: ClassVar[bool] = False
    # Settings that processes bind at start (a listener's port, a mailbox's poller): an edit
    # of one is reported as needing a restart instead of applied live (core/config_watch.py).
    restart_settings: ClassVar[tuple[str, ...]] = ()
    native_buttons: ClassVar[bool] = False  # send shows buttons; a press brings the payload

    def __init__(
        self, channel_id: str, settings: ChannelSettings, http: httpx.Client | None = None
    ) -> None:
        self.channel_id = channel_id
        self.settings = settings
        self._http = http
        # How long a platform call may take; the core sets it from ``replies.platform_timeout``
        # before the first call.
        self.http_timeout = httpx.Timeout(10.0, connect=5.0)
        if self.log_redaction is not None:
            redact_http_logs(*self.log_redaction)
        # Set by the core to its Redis-backed store; adapters that rotate tokens use it.
        self.token_store: TokenStore = MemoryTokenStore()

    @property
    def http(self) -> httpx.Client:
        """The adapter's one HTTP client, created on first use (never in the request path)."""
        if self._http is None:
            self._http = httpx.Client(timeout=self.http_timeout)
        return self._http

    # -- inbound ------------------------------------------------------------------------------
    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise :class:`tongdai.core.errors.SignatureError` unless the request is authentic.

        Constant-time comparisons only (:func:`constant_time_equal`).
        """

    def check_body(self, body: bytes) -> None:
        """Cheap well-formedness check in the request path; raise ``PayloadError`` (→ 400)."""

    def replay_nonce(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """A one-time token of this signed request, when the platform sends one (Mailgun):
        the core refuses a second request with the same token. Default: None."""
        return None

    def stored_body(self, headers: Mapping[str, str], body: bytes) -> bytes:
        """What the raw log keeps of an accepted request. Default: the body as received;
        a form post that wraps a mail keeps just the mail."""
        return body

    def handshake(self, args: Mapping[str, str]) -> str | None:
        """Answer a platform's GET verification handshake; None when the platform has none."""
        return None

    @abstractmethod
    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        """Turn one raw request into normalised events (a list: platforms batch).

        Raise ``PayloadError`` for a body that cannot be understood: it goes to the dead-letter
        list with the error. Unknown but well-formed events come back as ``UNSUPPORTED``. An
        empty list says the body carries nothing the hub can mean (a Telegram update with
        only its ``update_id``): dropped, and counted (``ignored:{channel}`` in ``td:stats``).
        """

    # -- outbound -----------------------------------------------------------------------------
    @abstractmethod
    def send(self, message: OutboundMessage) -> Receipt:
        """Send through the platform; raise ``DeliveryError`` (retryable or not) on failure."""

    @property
    def account_id(self) -> str | None:
        """This channel's account on the platform (Page id, OA id), when events name one.

        Platforms that deliver several accounts' events to one callback URL (Meta: every Page
        of an app) set ``InboundEvent.account_id``; the core routes each event to the channel
        whose ``account_id`` matches. Default: None (one URL per account).
        """
        return None

    def sent_dedupe_keys(self, message: OutboundMessage, receipt: Receipt) -> list[str]:
        """Dedupe keys under which the platform will report this send back to us (an echo of
        it, delivery/read receipts naming its id). The core records them with the message, so
        the echo of our own send is matched to it, not stored twice. Default: none."""
        return []

    def acknowledgement(self) -> str | None:
        """Text sent automatically when a customer's message opens a new conversation
        (``{ticket}`` is replaced by its number), or None. Default: None."""
        return None

    def acknowledge(self, ack: str) -> None:
        """Answer an event's ``ack`` token (e.g. stop a pressed button's spinner). Called by a
        background job; raise ``DeliveryError`` to have it retried. Default: nothing to do."""

    def fetch_file(self, att: Attachment, max_bytes: int) -> FetchedFile | None:
        """The bytes of a file a customer sent (``att`` as parsed), at most ``max_bytes``:
        ``DeliveryError`` (``too_big`` when larger; retryable for 429/5xx/network), or None
        when this platform has no way to fetch it. Called by a background job, never in the
        request path. Default: None."""
        return None

    def file_refusal(self, kind: str, mime: str, size: int) -> FileRefusal | None:
        """Why this platform will not send a file an agent attaches (``kind`` image or file,
        its sniffed or declared type, its size in bytes), or None when it takes it. Checked
        before the reply is stored. Default: no files on this platform."""
        return FileRefusal("no_files", f"{self.name} cannot send files from the hub",
                           {"platform": self.name})

    def fetch_profile(self, external_user_id: str) -> dict[str, Any] | None:
        """The customer's ``name`` and ``picture`` (URL) from the platform, or None.

        Called by a background job, never in the request path; the core caches the answer.
        """
        return None

    @abstractmethod
    def facts(self) -> ChannelFacts:
        """The platform facts the core needs (windows, rate limits, identifiers)."""

    def window(
        self, last_inbound_ts_ms: int | None, now_ms: int, author_kind: AuthorKind
    ) -> WindowState:
        """Whether a reply may be sent now, from the platform's window rules in ``facts``."""
        f = self.facts()
        if f.reply_window_s is None:
            return WindowState(True)
        if last_inbound_ts_ms is None:
            return WindowState(False, "the customer has never written on this channel",
                               "never_wrote")
        age_s = (now_ms - last_inbound_ts_ms) / 1000
        if age_s <= f.reply_window_s:
            return WindowState(True)
        if (
            author_kind == AuthorKind.AGENT
            and f.human_agent_window_s is not None
            and age_s <= f.human_agent_window_s
        ):
            return WindowState(True, "human agent window")
        return WindowState(
            False,
            f"the customer's last message is {age_s / 3600:.1f} h old; "
            f"{self.name} allows replies for {f.reply_window_s / 3600:.0f} h",
            "window_closed",
            {"age_h": round(age_s / 3600, 1), "window_h": round(f.reply_window_s / 3600),
             "platform": self.name},
        )

    def cannot_send(self) -> str | None:
        """Why this channel cannot send anything at all (a setting it lacks), or None. A
        channel that cannot send is unreachable for replies, whatever the customer's window."""
        return None

    # -- for newcomers and tests ----------------------------------------------------------------
    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        """A correctly signed inbound request (headers, body) carrying ``text`` from a user."""
        raise NotImplementedError(f"{self.name} cannot simulate inbound events yet")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()



def constant_time_equal(a: str | bytes | None, b: str | bytes) -> bool:
    """Compare secrets without leaking their length of common prefix through timing."""
    if a is None:
        return False
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name, whatever its case (werkzeug Headers or a plain dict)."""
    value = headers.get(name)  # werkzeug Headers: already case-insensitive
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """The body as a JSON object, or PayloadError naming ``what`` the platform should send."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise PayloadError(f"a {what} is a JSON object, got {type(data).__name__}")
    return data
