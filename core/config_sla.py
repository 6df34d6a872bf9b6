"""The SLA and business-hours sections of ``config/tongdai.yaml`` (see ``config_sections``)."""

from __future__ import annotations

import re

from pydantic import Field, PrivateAttr, field_validator, model_validator

from tongdai.core.config_base import _Section, _tz, parse_duration

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class CalendarSection(_Section):
    """Business hours (core/pipeline/calendars.py). ``always: true`` is round the clock."""

    always: bool = False
    timezone: str = "Asia/Ho_Chi_Minh"
    # weekday or range of weekdays -> "HH:MM-HH:MM", several spans comma-separated; 24:00 ends
    # a day. Days not named are closed.
    hours: dict[str, str] = {"mon-fri": "08:00-17:30"}
    holidays: list[str] = ["VN"]        # public holidays of these countries (ISO codes)
    closed_dates: list[str] = []        # the team's own closed dates, YYYY-MM-DD
    open_dates: list[str] = []          # extra working dates (workday hours), YYYY-MM-DD
    _weekly: dict[int, list] = PrivateAttr(default_factory=dict)

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _tz(v)))

    @field_validator("holidays")
    @classmethod
    def _countries(cls, v: list[str]) -> list[str]:
        import holidays

        known = holidays.list_supported_countries()
        for c in v:
            if c not in known:
                raise ValueError(f"{c!r} is not a country the holidays package knows; "
                                 "write an ISO code like VN, CN, TW, HK, SG")
        return v

    @field_validator("closed_dates", "open_dates")
    @classmethod
    def _dates(cls, v: list[str]) -> list[str]:
        import datetime as dt

        out = []
        for d in v:
            try:
                out.append(dt.date.fromisoformat(str(d)).isoformat())
            except ValueError:
                raise ValueError(f"{d!r} is not a date; write it like 2027-02-03") from None
        return out

    @model_validator(mode="after")
    def _parse_hours(self) -> CalendarSection:
        import datetime as dt

        weekly: dict[int, list] = {}
        for days, spans in self.hours.items():
            lo, _, hi = days.strip().lower().partition("-")
            if lo not in _DAYS or (hi and hi not in _DAYS):
                raise ValueError(f"hours: {days!r} is not a weekday or range; write mon-fri, "
                                 "sat or sun")
            a, b = _DAYS.index(lo), _DAYS.index(hi or lo)
            for day in (range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)]):
                for span in str(spans).split(","):
                    m = _SPAN.match(span)
                    if not m or int(m[1]) > 24 or int(m[3]) > 24 or int(m[2]) > 59 \
                            or int(m[4]) > 59:
                        raise ValueError(f"hours.{days}: {span.strip()!r} is not a time span; "
                                         "write it like 08:00-17:30")
                    t0 = dt.time(int(m[1]) % 24, int(m[2]))
                    t1 = dt.time(int(m[3]) % 24, int(m[4]))
                    if t1 != dt.time(0) and t1 <= t0:
                        raise ValueError(f"hours.{days}: {span.strip()!r} ends before it starts")
                    weekly.setdefault(day, []).append((t0, t1))
        if not self.always and not weekly:
            raise ValueError("hours: a calendar needs opening hours, or always: true")
        self._weekly = {d: sorted(v) for d, v in weekly.items()}
        return self

    @property
    def weekly(self) -> dict[int, list]:
        """Weekday (0 = Monday) -> sorted (open, close) local times."""
        return self._weekly

    @property
    def workday(self) -> list:
        """The hours of an extra working date: those of the first weekday that has hours."""
        return next((self._weekly[d] for d in range(7) if d in self._weekly), [])


class SlaTargets(_Section):
    first_response: float | None = None   # customer's first message -> first agent reply
    next_response: float | None = None    # each later customer message -> the next reply
    # the customer's first message -> resolved, not counting time waiting on the customer
    resolution: float | None = None

    _durations = field_validator("first_response", "next_response", "resolution",
                                 mode="before")(
        classmethod(lambda cls, v: None if v is None else parse_duration(v)))


class SlaPolicy(SlaTargets):
    """Targets for the conversations of some channels at or above a priority."""

    name: str
    channels: list[str] = []       # channel ids; [] = any
    adapters: list[str] = []       # adapter names (telegram, facebook, zalo, email, ...); [] = any
    priority_min: int = Field(0, ge=0, le=99)
    calendar: str = "24/7"         # a name under calendars:, or 24/7


class SlaAction(_Section):
    """What happens at an SLA warning or breach (core/workspace/sla_actions.py)."""

    notify: bool = True                 # supervisors: console, staff group, outgoing webhooks
    raise_priority: int | None = Field(None, ge=0, le=99)  # at least this priority
    escalate: bool = False              # move up a tier (the next tier's queue)


class SlaSection(SlaTargets):
    # Defaults for every queue; `queues:` overrides them per queue. Used for conversations no
    # policy matches, round the clock.
    first_response: float | None = 900.0
    next_response: float | None = 3600.0
    queues: dict[str, SlaTargets] = {}
    # Policies per channel and priority, the first match wins (most specific first).
    policies: list[SlaPolicy] = []
    warning_at: float = Field(0.8, gt=0, lt=1)  # share of a target at which to warn
    on_warning: SlaAction = SlaAction()
    on_breach: SlaAction = SlaAction(raise_priority=80)
