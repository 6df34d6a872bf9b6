"""The ``acknowledgements:`` section of ``config/tongdai.yaml``: the hub's automatic replies.

A customer's message that opens a conversation — and, on chat channels, their first message
after ``every`` without an automatic or an agent's reply — is answered once, in the
customer's language, with the ticket number and when to expect an agent; outside the
calendar's hours with the off-hours text. What is sent and when: core/pipeline/
acknowledgements.py; the checks across sections (channels, calendars): :func:`check`.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from tongdai.core.config_base import _Section, _tz, parse_duration
from tongdai.core.errors import ConfigError

LANGUAGES = ("vi", "en", "zh-Hans", "zh-Hant")
PLACEHOLDERS = ("ticket", "expected", "opens")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
SLA = "sla"  # calendar: the calendar of the conversation's SLA policy

# What a real shop sends. {expected} is a whole phrase ("trong khoảng 15 phút", "by 08:30 on
# Monday", "在30分钟内", "尽快"), {opens} a time and day ("08:00 thứ Hai", "周一08:00").
TEXTS = {
    "vi": "Dạ, cảm ơn anh/chị đã liên hệ! Shop đã nhận được tin nhắn (mã hỗ trợ #{ticket}). "
          "Nhân viên sẽ phản hồi anh/chị {expected} ạ.",
    "en": "Thanks for contacting us! We have received your message (ticket #{ticket}). "
          "Our team will reply {expected}.",
    "zh-Hans": "您好，感谢您的留言！我们已收到您的消息（工单号 #{ticket}），客服将{expected}回复您。",
    "zh-Hant": "您好，感謝您的留言！我們已收到您的訊息（工單號 #{ticket}），客服將{expected}回覆您。",
}
OFF_HOURS = {
    "vi": "Dạ, cảm ơn anh/chị đã liên hệ! Hiện shop đã hết giờ làm việc, tin nhắn của anh/chị "
          "đã được ghi nhận (mã hỗ trợ #{ticket}). Nhân viên sẽ làm việc trở lại lúc {opens} "
          "và phản hồi anh/chị {expected} ạ.",
    "en": "Thanks for contacting us! We are closed right now; your message is logged as "
          "ticket #{ticket}. We are back at {opens} and will reply {expected}.",
    "zh-Hans": "您好，感谢您的留言！现在是非工作时间，您的消息已记录（工单号 #{ticket}）。"
               "客服将于{opens}上班，并{expected}回复您。",
    "zh-Hant": "您好，感謝您的留言！目前為非營業時間，您的訊息已記錄（工單號 #{ticket}）。"
               "客服將於{opens}上班，並{expected}回覆您。",
}


def _texts(v: dict[str, str]) -> dict[str, str]:
    for lang, text in v.items():
        if lang not in LANGUAGES:
            raise ValueError(f"{lang!r} is not a language the hub tells apart; use "
                             f"{', '.join(LANGUAGES)}")
        if not str(text).strip():
            raise ValueError(f"the {lang} text is empty")
        for name in _PLACEHOLDER.findall(text):
            if name not in PLACEHOLDERS:
                raise ValueError(f"{{{name}}} in the {lang} text is not a placeholder; use "
                                 + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    return v


def _duration(v: object) -> float | None:
    return None if v is None else parse_duration(v)


class AcknowledgementChannel(_Section):
    """One channel's overrides; what it leaves out comes from the section."""

    enabled: bool | None = None
    again: bool | None = None
    every: float | None = Field(None, gt=0)
    language: str | None = None
    calendar: str | None = None
    texts: dict[str, str] = {}       # merged over the section's, language by language
    off_hours: dict[str, str] = {}

    _t = field_validator("texts", "off_hours")(classmethod(lambda cls, v: _texts(v)))
    _d = field_validator("every", mode="before")(classmethod(lambda cls, v: _duration(v)))


class AcknowledgementsSection(_Section):
    # Off unless enabled (here, or per channel). An email channel's own ``acknowledge:``
    # text still works as before: that text, in every language, at every hour.
    enabled: bool = False
    # At most one automatic reply per conversation within this period.
    every: float = Field(86400.0, gt=0)
    # Chat channels: the customer's first message after ``every`` with neither an automatic
    # nor an agent's reply is acknowledged too. Mail: new conversations only (a mail that
    # is not a reply opens one), unless a channel says again: true.
    again: bool = True
    language: str = "vi"  # for a message in none of the languages the texts have
    # Whose hours say "off hours": "sla" (the calendar of the conversation's SLA policy),
    # a name under calendars:, or 24/7 (never off hours).
    calendar: str = SLA
    # The times written in the texts when the calendar is 24/7 (a calendar has its own zone).
    timezone: str = "Asia/Ho_Chi_Minh"
    texts: dict[str, str] = TEXTS
    off_hours: dict[str, str] = OFF_HOURS
    channels: dict[str, AcknowledgementChannel] = {}

    _t = field_validator("texts", "off_hours")(classmethod(lambda cls, v: _texts(v)))
    _d = field_validator("every", mode="before")(classmethod(lambda cls, v: parse_duration(v)))
    _zone = field_validator("timezone")(classmethod(lambda cls, v: _tz(v)))

    @model_validator(mode="after")
    def _language(self) -> AcknowledgementsSection:
        for where, c in [("", self), *((f"channels.{k}.", v) for k, v in self.channels.items())]:
            if c.language is not None and c.language not in LANGUAGES:
                raise ValueError(f"{where}language: {c.language!r} is not one of "
                                 f"{', '.join(LANGUAGES)}")
            texts = {**self.texts, **c.texts} if c is not self else self.texts
            lang = c.language or self.language
            if texts and lang not in texts:
                raise ValueError(f"{where}language: {lang!r} has no text; add texts.{lang}")
        return self


def check(acks: AcknowledgementsSection, channels: set[str], calendars: set[str],
          path: str) -> list[ConfigError]:
    """Channels and calendars the section names must exist."""
    errors = []
    for cid in acks.channels:
        if cid not in channels:
            errors.append(ConfigError(path, f"acknowledgements.channels.{cid}",
                                      f"no channel {cid!r}", "name a channel instance from "
                                      "channels"))
    for where, cal in [("acknowledgements.calendar", acks.calendar),
                       *((f"acknowledgements.channels.{k}.calendar", c.calendar)
                         for k, c in acks.channels.items())]:
        if cal is not None and cal not in (SLA, "24/7") and cal not in calendars:
            errors.append(ConfigError(path, where, f"no calendar {cal!r}",
                                      "name one under calendars:, or write sla or 24/7"))
    return errors
