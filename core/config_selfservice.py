"""The ``selfservice:`` section of ``config/tongdai.yaml``: the bot that answers from the
knowledge base (core/selfservice/).

On the channels it names (``channels``; empty with ``enabled: true``: every channel), a
customer's message in a conversation no person has taken is matched against the articles;
at or above ``threshold`` the bot answers with the article and two buttons, "this helped" and
"talk to a person"; below it, or on a hand-off word (``handoff_words`` plus the built-in
"nhân viên", "gặp người thật", "人工", "agent", ...), the conversation is left to the queue
and the bot stays quiet in it.

``intake`` (a list of scripts): before that hand-off, in a conversation carrying one of a
script's ``tags`` on one of its ``channels``, the bot first asks for what the team needs (order
id, phone, amount, time, a screenshot: ``fields``) — core/selfservice/intake.py.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from tongdai.core.config_acks import LANGUAGES
from tongdai.core.config_base import _Section
from tongdai.core.errors import ConfigError

# What the two buttons say (Messenger cuts a quick reply's title at 20 characters).
BUTTONS = {
    "vi": {"helped": "Đã giải quyết", "agent": "Gặp nhân viên"},
    "en": {"helped": "This helped", "agent": "Talk to a person"},
    "zh-Hans": {"helped": "已解决", "agent": "转人工"},
    "zh-Hant": {"helped": "已解決", "agent": "轉真人客服"},
}
# Said after the article where the channel has no buttons (mail): the answer word works
# everywhere, typed.
REPLY_HINT = {
    "vi": "Chưa giải quyết được? Trả lời \"nhân viên\" để gặp nhân viên hỗ trợ.",
    "en": "Not solved? Reply \"agent\" to talk to a person.",
    "zh-Hans": "没有解决？回复“人工”转接客服。",
    "zh-Hant": "沒有解決？回覆「人工」轉接客服。",
}


INTAKE_KINDS = ("order_id", "phone", "amount", "datetime", "image", "text")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class IntakeField(_Section):
    name: str  # the conversation attribute it fills (what `source: attribute` lookups read)
    kind: str  # order_id (by pattern) | phone | amount | datetime | image | text
    pattern: str = ""  # order_id: a regular expression; its first group (else the match)
    prompt: dict[str, str]  # per language (vi, en, zh-Hans, zh-Hant): what the bot asks
    required: bool = True  # optional fields are asked for, never waited on

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("1-32 lower-case letters, digits or _, starting with a letter "
                             "(e.g. order_id)")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in INTAKE_KINDS:
            raise ValueError(f"use one of {', '.join(INTAKE_KINDS)}")
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if k not in LANGUAGES]
        if bad or not v:
            raise ValueError(f"give the prompt per language, keys among {', '.join(LANGUAGES)}"
                             + (f" (not {', '.join(bad)})" if bad else ""))
        return v

    @model_validator(mode="after")
    def _pattern(self) -> IntakeField:
        if self.kind == "order_id" and not self.pattern:
            raise ValueError(f"field {self.name!r}: an order_id needs a pattern, e.g. "
                             r"'(?:#|đơn |订单)\s*(\d{6,12})'")
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"field {self.name!r}: pattern does not compile ({exc}); "
                                 "quote it in single quotes in YAML") from None
        return self


class IntakeScript(_Section):
    tags: list[str] = Field(min_length=1)  # a conversation with any of these tags
    channels: list[str] = []  # channel ids; empty: every channel the bot is on
    fields: list[IntakeField] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> IntakeScript:
        names = [f.name for f in self.fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"field names must differ: {', '.join(dup)} twice")
        return self


class SelfServiceSection(_Section):
    enabled: bool = False
    channels: list[str] = []  # channel ids; empty: every channel (when enabled)
    threshold: float = Field(0.3, ge=0.0, le=1.0)  # measured: docs/decisions.md
    language: str = "vi"  # when the message's language is not one the article has
    handoff_words: list[str] = []  # added to the built-in ones
    # Ticket status and surveys (core/selfservice/status.py, surveys.py), on ``channels`` too
    status: bool = False  # answer "/status", "tình trạng", "进度", ... about their own tickets
    status_words: list[str] = []  # added to the built-in ones
    csat: bool = False  # a 1-5 rating after resolve, once per conversation
    comment_minutes: int = Field(10, ge=0, le=1440)  # after the rating, a comment is taken
    nps: bool = False  # 0-10 after the CSAT answer, at most every nps_every_days per customer
    nps_every_days: int = Field(90, ge=1, le=3650)
    intake: list[IntakeScript] = []  # questions before hand-off (core/selfservice/intake.py)

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in LANGUAGES:
            raise ValueError(f"use one of {', '.join(LANGUAGES)}")
        return v

    def on(self, channel_id: str, feature: str = "enabled") -> bool:
        """The feature (``enabled``: the bot; ``status``, ``csat``) is on for the channel."""
        return getattr(self, feature) and (not self.channels or channel_id in self.channels)


def check(section: SelfServiceSection, channels: set[str], path: str) -> list[ConfigError]:
    """The channels named must exist."""
    return [ConfigError(path, f"selfservice.channels[{i}]", f"no channel {c!r}",
                        "name a channel instance from channels, or leave the list empty "
                        "for every channel")
            for i, c in enumerate(section.channels) if c not in channels] + (
        [ConfigError(path, "selfservice.nps", "NPS is asked after the CSAT answer, and "
                     "csat is off", "set selfservice.csat: true, or nps: false")]
        if section.nps and not section.csat else []) + [
        ConfigError(path, f"selfservice.intake[{i}].channels[{j}]", f"no channel {c!r}",
                    "name a channel instance from channels, or leave the list empty for every "
                    "channel the bot is on")
        for i, s in enumerate(section.intake) for j, c in enumerate(s.channels)
        if c not in channels]
