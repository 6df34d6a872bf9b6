"""The API's JSON shapes as pydantic models: spectree validates requests and answers with
them and writes them into ``/api/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import core_schema
from spectree.model_adapter.pydantic_adapter import BaseFile


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Strict(BaseModel):
    """Request bodies: unknown fields are a mistake worth telling."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Model):
    code: str
    message: str
    # the case, for clients that say it in their own language (the console's "error.<reason>")
    reason: str | None = None
    params: dict[str, Any] | None = None


class Error(Model):
    error: ErrorDetail


ERRORS = {"HTTP_400": Error, "HTTP_401": Error, "HTTP_403": Error, "HTTP_404": Error,
          "HTTP_409": Error}


class IdempotencyHeaders(Model):
    """The header every create takes (``headers=`` of its route): documented, so clients and
    schemathesis send it; the route reads it with ``idempotency_key()``."""

    idempotency_key: str = Field(
        alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"\S",
        description="any unique string per create (a UUID): a retry with the same key within "
                    "24 h gets the first answer again and never creates twice")


class FormText:
    """A form field documented as a string and taken as sent: the upload route reads its form
    itself (the first value; a part sent as a file is no text), so validation only documents
    it — a file where text was expected made the validator's error answer a 500."""

    @classmethod
    def __get_pydantic_json_schema__(cls, _core_schema: Any, _handler: Any) -> dict[str, str]:
        return {"type": "string"}

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        return core_schema.with_info_plain_validator_function(lambda v, *_: v)


class UploadForm(Model):
    """``multipart/form-data`` of a reply with files (``form=`` of the upload route)."""

    file: BaseFile | None = Field(
        None, description="a file; repeat the part for several (at least one: without, 400 "
                          "with reason file_no_files)")
    text: FormText | None = Field(None, description="the reply's text, sent with the files")
    channel_id: FormText | None = Field(
        None, description="the customer's channel to send on (default: the conversation's)")


class ListQuery(Strict):
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)


class Author(Model):
    kind: str
    id: str | None


class AttachmentOut(Model):
    kind: str
    url: str | None = None
    file_id: str | None = None
    name: str | None = None
    mime: str | None = None
    size: int | None = None


class MessageOut(Model):
    id: str
    conversation_id: str
    direction: str
    author: Author
    channel_id: str
    kind: str
    text: str | None
    attachments: list[AttachmentOut]
    status: str
    status_reason: str | None
    # the sender's reason in parts (code, detail, attempt, max, delay_s, twice): what a
    # console translates; null when the reason came from the platform
    status_why: dict[str, Any] | None = None
    external_id: str | None
    reply_to: str | None
    tags: list[str]
    reactions: dict[str, str]
    payload: str | None
    subject: str | None
    platform_ts: int
    received_ts: int
    edited_ts: int | None


class MessagePage(Model):
    items: list[MessageOut]
    next_cursor: str | None


class ConversationOut(Model):
    id: str
    customer_id: str
    channel_id: str
    status: str
    queue: str
    assignee: str | None
    tags: list[str]
    priority: int
    created_ts: int
    updated_ts: int
    last_inbound_ts: int | None
    resolved_ts: int | None
    escalated: bool = False
    snoozed_until_ts: int | None = None  # while snoozed (status pending)
    priority_reason: str | None = None  # which rule set the priority, and what matched
    # CSAT/NPS of this conversation (one conversation only): asked_at, csat, nps, comment,
    # skipped (why not asked), waiting_for — core/selfservice/surveys.py
    survey: dict | None = None
    # What the self-service intake collected before hand-off: fields [{name, kind, required,
    # value}], complete, skipped, state — core/selfservice/intake.py
    intake: dict | None = None


class ConversationPage(Model):
    items: list[ConversationOut]
    next_cursor: str | None


class ChannelStateOut(Model):
    channel_id: str
    address: str
    last_inbound_ts: int | None
    reachable: bool
    reason: str
    # not_configured, blocked, cannot_send, never_wrote, window_closed, or "" (open): what a
    # console translates; reason_detail carries window_closed's age_h, window_h, platform
    reason_code: str = ""
    reason_detail: dict[str, Any] = {}


class ChannelStatePage(Model):
    items: list[ChannelStateOut]
    next_cursor: str | None


class IdentityOut(Model):
    channel_id: str
    external_user_id: str
    address: str


class CustomerConversationOut(Model):
    id: str
    status: str
    channel_id: str
    queue: str
    created_ts: int
    updated_ts: int


class CustomerOut(Model):
    id: str
    name: str | None
    picture: str | None
    created_ts: int
    merged_into: str | None
    erased_ts: int | None
    current_conversation_id: str | None
    identities: list[IdentityOut]
    identifiers: list[dict[str, Any]]
    tier: str | None = None  # routing and priority rules read it (PATCH to set it)
    opted_out: dict[str, Any] | None = None  # {ts, channel, word}: broadcasts skip them
    conversations: list[CustomerConversationOut] = Field(default_factory=list)


class AnyObject(Model):
    """An object whose fields the route's description lists."""


class AnyPage(Model):
    items: list[dict[str, Any]]
    next_cursor: str | None


class ReplyIn(Strict):
    text: str | None = Field(None, max_length=20_000)
    attachments: list[AttachmentOut] = Field(default_factory=list, max_length=1)
    channel_id: str | None = None


class WhyIn(Strict):
    why: str = Field("", max_length=2000)


class MergeIn(WhyIn):
    source_customer_id: str = Field(min_length=1, max_length=40)
