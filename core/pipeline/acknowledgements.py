"""Automatic replies: a customer is told their message arrived, its ticket number and when an
agent will answer — in their language, on any channel, at most once per conversation and period.

When one is due is decided by the ingest script, atomically with the message
(``core/lua/ingest.lua``, ARGV[20] from :meth:`Plan.lua_arg`): a customer's message (never
automatic mail: mail.py files that as ``auto_reply``, not ``message``) that opens a
conversation, or, where ``again`` holds, their first message after ``every`` with neither an
automatic nor an agent's reply. The script then writes ``td:ack:due`` (conversation →
"channel␟mark␟message time␟language") and the conversation's ``ack_at``. The worker sends it
right after the batch (:func:`acknowledge`); the scheduler sweeps what a crashed worker left
(:func:`acknowledge_due`). The reply goes through ``create_reply`` under an idempotency key
of its mark, so it is queued once, and within the platform's window rules: a refusal (window
closed, customer blocked the bot, channel removed) is recorded on the conversation
(``ack_refused``) and in the stats, then dropped — never retried.

The text: the channel's (section ``channels:``), else the section's, in the message's
language (``lang:*`` of core/pipeline/language.py) or ``language``; the off-hours text when
the calendar is closed at the message's time. ``{ticket}`` is the conversation id,
``{expected}`` the conversation's SLA due time (``sla_due``) as the customer reads it
(core/pipeline/acknowledgement_phrases.py: "trong khoảng 15 phút", "by 08:30 on Monday"),
``{opens}`` when the calendar next opens. An email channel's own ``acknowledge:`` setting is
its text in every language, as before.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tongdai.adapters.base import Adapter
from tongdai.core import clock
from tongdai.core.config import HubConfig
from tongdai.core.config_acks import SLA
from tongdai.core.errors import NotFound, WindowClosed
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind
from tongdai.core.pipeline import sla
from tongdai.core.pipeline.acknowledgement_phrases import expected_phrase, opens_phrase
from tongdai.core.pipeline.calendars import Calendar

log = logging.getLogger(__name__)
SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class ChannelAcks:
    """One channel's acknowledgements, every override applied."""

    again_ms: int  # 0: new conversations only
    language: str
    calendar: str  # "sla", a calendar name or 24/7
    texts: dict[str, str]
    off_hours: dict[str, str]


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement as it would be sent."""

    text: str
    language: str
    off_hours: bool
    calendar: str
    expected: str


class Plan:
    """The acknowledgements of one config, resolved per channel (built once per config)."""

    def __init__(self, cfg: HubConfig, adapters: Mapping[str, Adapter],
                 sla_plan: sla.Plan | None = None) -> None:
        self.cfg = cfg.acknowledgements
        self.sla = sla_plan or sla.Plan(cfg)
        self.zone = ZoneInfo(self.cfg.timezone)
        # mail threads by reference: a mail that is not a reply opens a conversation anyway
        self.channels: dict[str, ChannelAcks | None] = {
            cid: self._resolve(cid, a.acknowledgement(), not a.threads_by_reference)
            for cid, a in adapters.items()}

    def _resolve(self, cid: str, legacy: str | None, chat: bool) -> ChannelAcks | None:
        s, o = self.cfg, self.cfg.channels.get(cid)
        enabled = o.enabled if o is not None and o.enabled is not None else s.enabled
        if not enabled and not legacy:
            return None
        texts, off = s.texts, s.off_hours
        if legacy and not (o is not None and o.texts):  # the channel's own text, everywhere
            texts = {lang: legacy for lang in (set(texts) | {s.language})}
            off = {}
        if o is not None:
            texts, off = {**texts, **o.texts}, {**off, **o.off_hours}
        # an adapter's own text alone (the section off): new conversations only, as ever
        again = o.again if o is not None and o.again is not None else (
            s.again and chat and enabled)
        every = o.every if o is not None and o.every is not None else s.every
        return ChannelAcks(int(every * 1000) if again else 0,
                           (o.language if o is not None else None) or s.language,
                           (o.calendar if o is not None else None) or s.calendar, texts, off)

    def lua_arg(self, channel_id: str, language: str | None) -> str:
        """The ingest script's ARGV[20]: "" when the channel does not acknowledge, else
        "again ms␟language" (again 0: new conversations only)."""
        c = self.channels.get(channel_id)
        return "" if c is None else f"{c.again_ms}{SEP}{language or ''}"

    def calendar(self, channel_id: str, priority: int, queue: str) -> Calendar:
        c = self.channels[channel_id]
        if c is None or c.calendar == SLA:
            return self.sla.policy(channel_id, priority, queue)[1]
        return self.sla.calendars[c.calendar]

    def compose(self, channel_id: str, ticket: str, language: str | None, at_ms: int,
                due_ms: int | None, priority: int = 0, queue: str = "") -> Ack | None:
        """The acknowledgement of a message written at ``at_ms``, or None (off)."""
        c = self.channels.get(channel_id)
        if c is None:
            return None
        cal = self.calendar(channel_id, priority, queue)
        zone = self.zone if cal.always else cal.tz
        closed = not cal.is_open(at_ms)
        lang = pick(language, c.texts, c.language)
        text = (c.off_hours.get(lang) if closed else None) or c.texts[lang]
        expected = expected_phrase(lang, at_ms, due_ms, not closed, zone)
        if "{opens}" in text:
            text = text.replace("{opens}", opens_phrase(lang, at_ms, cal.next_open(at_ms), zone))
        text = text.replace("{expected}", expected).replace("{ticket}", ticket)
        return Ack(text, lang, closed, cal.name, expected)


def pick(language: str | None, texts: dict[str, str], default: str) -> str:
    """The language to answer in: the message's, the other Chinese script (plain ``zh``:
    Simplified first), else the default."""
    lang = language or ""
    tries = [lang]
    if lang.startswith("zh"):
        tries += ["zh-Hant"] if lang == "zh-Hans" else ["zh-Hans", "zh-Hant"]
    return next((x for x in tries if x in texts), default)


def plan(hub: Hub) -> Plan:
    return hub.memo("acknowledgements.plan",
                    lambda: Plan(hub.config.hub, hub.adapters, sla.plan(hub)))


@dataclass(frozen=True, slots=True)
class Due:
    """A ``td:ack:due`` entry."""

    channel: str
    mark: str  # the hub's ms when it became due: one key per acknowledgement
    at_ms: int | None  # the message's time (min of the platform's and the hub's)
    language: str

    @classmethod
    def parse(cls, raw: str) -> Due:
        parts = raw.split(SEP)
        if len(parts) < 4:  # written before per-period acknowledgements: "channel"
            return cls(parts[0], "", None, "")
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def key(self, conv_id: str) -> str:
        return f"ack:{conv_id}:{self.mark}" if self.mark else f"ack:{conv_id}"


def acknowledge(hub: Hub, channel_id: str, conv_id: str) -> None:
    """Queue the acknowledgement due for ``conv_id`` (``channel_id`` is where it was due
    when the entry does not say). Nothing due: nothing done. A failure leaves it due for the
    scheduler's sweep; a refusal by the window rules is recorded and dropped."""
    from tongdai.core.pipeline.outbound import create_reply

    key = hub.keys.acknowledgements_due()
    raw = hub.redis.hget(key, conv_id)
    if raw is None:
        return
    due = Due.parse(raw.decode() or channel_id)
    try:
        h = hub.redis.hmget(hub.keys.conversation(conv_id), ["sla_due", "priority", "queue"])
        ack = plan(hub).compose(due.channel, conv_id, due.language,
                                due.at_ms or clock.now_ms(), int(h[0]) if h[0] else None,
                                int(h[1] or 0), (h[2] or b"").decode())
        if ack is not None:
            create_reply(hub, conv_id, ack.text, "auto-acknowledgement", due.key(conv_id),
                         "system", channel_id=due.channel, author_kind=AuthorKind.BOT)
    except (WindowClosed, NotFound) as exc:  # the platform's rules (or the config) say no
        pipe = hub.redis.pipeline(transaction=False)
        if hub.redis.exists(hub.keys.conversation(conv_id)):  # (not one erased meanwhile)
            pipe.hset(hub.keys.conversation(conv_id), "ack_refused", f"{due.mark}: {exc}")
        pipe.hincrby(hub.keys.stats(), f"ack-refused:{due.channel}")
        pipe.execute()
        log.info("acknowledgement of conversation %s on %s not sent: %s", conv_id,
                 due.channel, type(exc).__name__)
    except Exception:  # never lose the batch over a courtesy message; the scheduler retries
        log.exception("acknowledging conversation %s on %s failed", conv_id, due.channel)
        return
    # (a newer one cannot be due yet: the next is ``every`` after this one's ack_at)
    hub.redis.hdel(key, conv_id)




def acknowledge_due(hub: Hub) -> int:
    """Queue acknowledgements a crashed worker left due (the scheduler calls this)."""
    due = hub.redis.hgetall(hub.keys.acknowledgements_due())
    for conv, raw in due.items():
        acknowledge(hub, raw.decode().partition(SEP)[0], conv.decode())
    return len(due)


def preview(cfg: HubConfig, adapters: Mapping[str, Adapter], channel_id: str,
            language: str | None, priority: int, queue: str,
            at: dt.datetime | None = None) -> Ack | None:
    """What a message opening a conversation at ``at`` (naive: the calendar's local time;
    None: now) would be answered, ticket 123 (``tongdai rules test``); the due time worked
    out from the SLA policy as the ingest script does."""
    p = Plan(cfg, adapters)
    if p.channels.get(channel_id) is None:
        return None
    cal = p.calendar(channel_id, priority, queue)
    if at is None:
        at_ms = clock.now_ms()
    else:
        zone = p.zone if cal.always else cal.tz
        at_ms = int((at if at.tzinfo else at.replace(tzinfo=zone)).timestamp() * 1000)
    _, sla_cal, first, _later = p.sla.policy(channel_id, priority, queue)
    due = sla_cal.add(at_ms, first) if first is not None else None
    return p.compose(channel_id, "123", language, at_ms, due, priority, queue)
