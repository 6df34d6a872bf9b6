"""The settings of a declarative (``adapter: webhook``) channel: how requests are verified,
how events are read from a body, and how replies are sent — all checked at start-up.

Every mistake names its key under ``channels[<id>].settings`` and says how to fix it: an
expression that is not JMESPath, a required mapping left out, a placeholder no template
offers, a secret referenced but not defined. docs/webhook-adapter.md is the reference.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tongdai.adapters.base import ChannelSettings
from tongdai.adapters.files import FILE_KINDS
from tongdai.adapters.webhook.expressions import ExpressionError, check
from tongdai.adapters.webhook.templates import placeholders, unknown
from tongdai.core.config_base import parse_duration

# What each template may name (``secrets.NAME`` is offered everywhere but the signed string).
SEND_PLACEHOLDERS = frozenset({"address", "text", "reply_to", "idempotency_key",
                               "idempotency_uuid", "channel_id"})
PROFILE_PLACEHOLDERS = frozenset({"user_id", "channel_id"})
FILES_PLACEHOLDERS = frozenset({"file_id", "url", "channel_id"})
SIGNED_PLACEHOLDERS = frozenset({"body"})
KINDS = ("message", "edit", "delete", "postback", "follow", "unfollow", "system",
         "unsupported", "ignore")
_STATUS_CLASS = re.compile(r"[1-5]xx")


def mistake(problem: str, fix: str, key: str = "") -> PydanticCustomError:
    """A validation error carrying its own fix (and, from a whole-model check, the key under
    the model it concerns): core/config.py puts both into the ConfigError."""
    return PydanticCustomError("tongdai_mapping", "{problem}",
                               {"problem": problem, "fix": fix, "key": key})


def _expression(v: str | None) -> str | None:
    if v is None:
        return v
    try:
        return check(v)
    except ExpressionError as exc:
        raise mistake(str(exc), "write a JMESPath expression (https://jmespath.org/specification"
                      ".html); test it on a sample body with `jp` or jmespath.org") from None


class _Part(ChannelSettings):
    """A part of the settings: strict (unknown keys are mistakes), never echoing input."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class HmacVerify(_Part):
    """An HMAC of the request (the raw body, or a template over body and headers)."""

    kind: Literal["hmac"]
    header: str
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""  # what the header carries before the digest, e.g. "sha256="
    secret: str  # a name under secrets:
    signed: str = "{body}"  # e.g. "v0:{header.X-Request-Timestamp}:{body}"

    @field_validator("signed")
    @classmethod
    def _signed(cls, v: str) -> str:
        bad = unknown(v, SIGNED_PLACEHOLDERS, frozenset({"header"}))
        if bad:
            raise mistake(f"unknown placeholder {{{bad[1]}}}",
                          "the signed string may use {body} and {header.NAME}")
        if "{body}" not in v:
            raise mistake("the signed string leaves out {body}: anyone could change the body",
                          "put {body} where the platform signs the raw body")
        return v


class TokenVerify(_Part):
    """A shared token the platform sends in a header (after an optional prefix)."""

    kind: Literal["token"]
    header: str
    prefix: str = ""  # e.g. "Bearer "
    secret: str  # a name under secrets:


class NoVerify(_Part):
    """No check at all: only for a private network, and said so with a reason."""

    kind: Literal["none"]
    reason: str = Field(min_length=3)


Verify = Annotated[HmacVerify | TokenVerify | NoVerify, Field(discriminator="kind")]


class EventsMapping(_Part):
    """Where the events are in a body and what each of their fields is (JMESPath)."""

    list: str = "@"  # the events in a body; "@" when the body is one event
    kind: str | None = None  # the event's kind, looked up in ``kinds``; None: all messages
    kinds: dict[str, Literal[KINDS]] = Field(default_factory=dict)  # type: ignore[valid-type]
    other_kinds: Literal["unsupported", "ignore"] = "unsupported"
    skip_when: str | None = None  # an event for which this is true is ignored
    id: str | None = None  # unique per event: a redelivery is stored once
    customer_id: str
    address: str | None = None  # where replies go when not the customer id (a group)
    message_id: str | None = None
    text: str | None = None
    attachments: str | None = None  # a list of {kind, url, file_id, name, mime, size, meta}
    timestamp: str | None = None
    timestamp_unit: Literal["s", "ms", "iso"] = "ms"
    display_name: str | None = None
    reply_to: str | None = None  # the platform id of the message this one answers
    target_id: str | None = None  # edits and deletes: the platform id of the changed message
    payload: str | None = None  # postbacks: the button's data
    deleted_text: str = "[the customer deleted this message]"

    _exprs = field_validator("list", "kind", "skip_when", "id", "customer_id", "address",
                             "message_id", "text", "attachments", "timestamp", "display_name",
                             "reply_to", "target_id", "payload")(classmethod(
                                 lambda cls, v: _expression(v)))

    @model_validator(mode="after")
    def _complete(self) -> EventsMapping:
        if self.id is None and self.message_id is None:
            raise mistake("neither id nor message_id is mapped: a redelivered event would be "
                          "stored twice", "map id: to the event's unique id (LINE: "
                          "webhookEventId), or message_id:", "id")
        if self.kinds and self.kind is None:
            raise mistake("kinds: is given but no kind: expression picks the value it maps",
                          "add kind: (LINE: type)", "kind")
        changes = sorted(k for k, v in self.kinds.items() if v in ("edit", "delete"))
        if changes and self.target_id is None:
            raise mistake(f"kinds {', '.join(changes)} edit or delete a message, but "
                          "target_id: is not mapped", "map target_id: to the changed "
                          "message's id (LINE unsend: unsend.messageId)", "target_id")
        if changes and self.message_id is None:
            raise mistake(f"kinds {', '.join(changes)} name messages by their id, but "
                          "message_id: is not mapped, so the changed message cannot be found",
                          "map message_id: to each message's platform id (LINE: message.id)",
                          "message_id")
        return self


class RateLimitSettings(_Part):
    count: int = Field(gt=0)
    per: float = 1.0
    scope: Literal["channel", "address"] = "channel"

    _per = field_validator("per", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


class SendSettings(_Part):
    """How a reply is sent and what the platform's answers mean."""

    url: str
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any]
    message_id: str  # where the platform's id of the sent message is in its answer
    # Answers meaning "that idempotency key was accepted before": the send counts as done.
    already_sent: list[int] = Field(default_factory=list)
    retry_status: list[int | str] = Field(default_factory=lambda: [429, "5xx"])
    retry_when: str | None = None  # true on the answer: try again later
    fail_when: str | None = None  # true on a 2xx answer: a permanent failure
    retry_after: str | None = None  # seconds to wait, from the answer (Retry-After is read too)
    error: str | None = None  # the platform's error text in its answer, shown to agents
    idempotent: bool = False  # the platform drops a resend with the same key
    rate_limit: RateLimitSettings | None = None

    _exprs = field_validator("message_id", "retry_when", "fail_when", "retry_after", "error")(
        classmethod(lambda cls, v: _expression(v)))

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise mistake("the send URL must start with http:// or https://",
                          "write the platform's full API URL, e.g. "
                          "https://api.line.me/v2/bot/message/push")
        return v

    @field_validator("retry_status")
    @classmethod
    def _statuses(cls, v: list[int | str]) -> list[int | str]:
        for s in v:
            if isinstance(s, str) and not _STATUS_CLASS.fullmatch(s):
                raise mistake(f"{s!r} is not a status code", "write codes like 429 or a class "
                              "like 5xx")
        return v

    @model_validator(mode="after")
    def _templates(self) -> SendSettings:
        for key, template in (("url", self.url), ("headers", self.headers),
                              ("body", self.body)):
            bad = unknown(template, SEND_PLACEHOLDERS, frozenset({"secrets"}))
            if bad:
                raise mistake(f"unknown placeholder {{{bad[1]}}}", "use "
                              + ", ".join(f"{{{n}}}" for n in sorted(SEND_PLACEHOLDERS))
                              + " or {secrets.NAME}", f"{key}{bad[0]}")
        if self.idempotent and not any(
                name in ("idempotency_key", "idempotency_uuid")
                for t in (self.url, self.headers, self.body) for _, name in _names(t)):
            raise mistake("idempotent: true, but no template sends {idempotency_key} or "
                          "{idempotency_uuid}: the platform could not recognise a resend",
                          "send the key where the platform reads it (LINE: the "
                          "X-Line-Retry-Key header), or set idempotent: false", "idempotent")
        return self


def _names(template: Any) -> list[tuple[str, str]]:
    return list(placeholders(template))


def _only(known: frozenset[str], **templates: Any) -> None:
    """A mistake naming the first placeholder of these templates (key → template) that is
    neither in ``known`` nor a ``{secrets.NAME}``."""
    for key, template in templates.items():
        bad = unknown(template, known, frozenset({"secrets"}))
        if bad:
            raise mistake(f"unknown placeholder {{{bad[1]}}}", "use " + ", ".join(
                f"{{{n}}}" for n in sorted(known)) + " or {secrets.NAME}", f"{key}{bad[0]}")


class ProfileSettings(_Part):
    """Optional: ask the platform for a new customer's name and picture."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    name: str
    picture: str | None = None

    _exprs = field_validator("name", "picture")(classmethod(lambda cls, v: _expression(v)))

    @model_validator(mode="after")
    def _templates(self) -> ProfileSettings:
        _only(PROFILE_PLACEHOLDERS, url=self.url, headers=self.headers)
        return self


class FilesSettings(_Part):
    """Optional: how to fetch a file a customer sent (a photo, voice, a document), so the hub
    keeps it (encrypted, in the blob store) and agents see it: a GET of ``url`` with
    ``headers``, by the background job after the message is stored. ``{file_id}`` is the
    attachment's ``file_id`` from ``events.attachments`` (escaped for a URL), ``{url}`` its
    ``url`` as the platform sent it (the whole template: fetch what the webhook names)."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    kinds: list[str] = Field(default_factory=lambda: sorted(FILE_KINDS))

    @model_validator(mode="after")
    def _templates(self) -> FilesSettings:
        _only(FILES_PLACEHOLDERS, url=self.url, headers=self.headers)
        if "{url}" in self.url and self.url.strip() != "{url}":
            raise mistake("{url} is the whole address the platform sent",
                          "write url: \"{url}\" alone, or build the address from {file_id}",
                          "url")
        if self.url.strip() == "{url}" and any(
                n.startswith("secrets.") for _, n in placeholders(self.headers)):
            raise mistake("with url: \"{url}\" a secret in the headers would go to whatever "
                          "host a webhook names", "fetch {url} without secrets, or build the "
                          "address from {file_id} on the platform's own host", "headers")
        if wrong := sorted(set(self.kinds) - FILE_KINDS):
            raise mistake(f"{', '.join(wrong)} is not a kind of file",
                          f"use some of {', '.join(sorted(FILE_KINDS))}", "kinds")
        return self


class WebhookSettings(ChannelSettings):
    """Settings of one declarative channel (``adapter: webhook``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    platform: str = "webhook"  # its name in messages agents and admins read
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    verify: Verify
    events: EventsMapping
    send: SendSettings
    profile: ProfileSettings | None = None
    files: FilesSettings | None = None
    reply_window: float | None = None  # seconds ("24h" in the file); None: no window
    redelivery_horizon: float | None = None

    @field_validator("reply_window", "redelivery_horizon", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float | None:
        if v is None or (isinstance(v, str) and v.strip().lower() == "none"):
            return None
        if isinstance(v, int | float):  # 24 meant as hours would silently be 24 seconds
            raise mistake(f"{v} has no unit", f"write it with its unit, e.g. {v}h, or none")
        try:
            return parse_duration(v)
        except ValueError as exc:
            raise mistake(str(exc), "write a duration like 24h or 7d, or none") from None

    @model_validator(mode="after")
    def _files_from_signed_webhooks(self) -> WebhookSettings:
        if (self.files is not None and self.files.url.strip() == "{url}"
                and isinstance(self.verify, NoVerify)):
            raise mistake("files: url: \"{url}\" fetches the address an unsigned request names",
                          "verify the webhooks (kind: hmac or token), or leave files: out",
                          "files.url")
        return self

    @model_validator(mode="after")
    def _secrets(self) -> WebhookSettings:
        defined = set(self.secrets)
        used: list[tuple[str, str]] = []
        if not isinstance(self.verify, NoVerify):
            used.append(("verify.secret", f"secrets.{self.verify.secret}"))
        for key, template in (("send.url", self.send.url), ("send.headers", self.send.headers),
                              ("send.body", self.send.body)):
            used += [(f"{key}{w}", n) for w, n in _names(template)]
        for part in ("profile", "files"):
            if (got := getattr(self, part)) is not None:
                for key, template in ((f"{part}.url", got.url), (f"{part}.headers", got.headers)):
                    used += [(f"{key}{w}", n) for w, n in _names(template)]
        for key, name in used:
            head, _, secret = name.partition(".")
            if head == "secrets" and secret not in defined:
                raise mistake(f"secret {secret!r} is not defined under secrets:",
                              f"add secrets: {{{secret}: ${{ENV_VAR}}}} (secrets come from the "
                              "environment), or fix the name", key)
        return self
