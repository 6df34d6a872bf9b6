"""Business-hours calendars: when the team is at work, so SLA clocks run only then.

A calendar is a time zone, weekly opening hours, public holidays from the ``holidays`` package
(Vietnam's Tết and national days, China's Spring Festival — with China's weekend make-up
working days), the team's own closed dates and its own extra working dates; or ``24/7``.

``add(start_ms, seconds)`` is the due time of a target of ``seconds`` of working time counted
from ``start_ms``; ``working_ms(a, b)`` the working time between two instants; ``is_open`` and
``next_open`` what an off-hours acknowledgement needs. Days are resolved to open intervals in
epoch ms once and cached (a few hundred bytes a day); all arithmetic is on those intervals, so a
target that crosses a week of Tết costs a few dozen dictionary look-ups.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from tongdai.core.config_sla import CalendarSection

DAY = dt.timedelta(days=1)
MAX_DAYS = 3 * 366  # a target that finds no working time in 3 years is a config mistake


class Calendar:
    """One calendar (``CalendarSection``), or round the clock when ``cfg`` is None."""

    def __init__(self, name: str, cfg: CalendarSection | None) -> None:
        self.name = name
        self.always = cfg is None or cfg.always
        self.cfg = cfg
        self.tz = ZoneInfo(cfg.timezone) if cfg is not None else dt.UTC
        self._public: dict[int, object] = {}

    # -- days ------------------------------------------------------------------------------
    def _holidays(self, year: int):
        got = self._public.get(year)
        if got is None:
            import holidays  # loaded on first use: a 24/7-only hub never pays for it

            got = [holidays.country_holidays(c, years=year) for c in self.cfg.holidays]
            self._public[year] = got
        return got

    def day_hours(self, day: dt.date) -> list[tuple[dt.time, dt.time]]:
        """Opening hours on a local date ([] = closed)."""
        cfg = self.cfg
        iso = day.isoformat()
        if iso in cfg.closed_dates:
            return []
        if iso in cfg.open_dates:
            return cfg.workday
        public = self._holidays(day.year)
        if any(day in h for h in public):
            return []
        hours = cfg.weekly.get(day.weekday(), [])
        if not hours and any(day in getattr(h, "weekend_workdays", ()) for h in public):
            return cfg.workday  # a weekend the country works (China's 调休 make-up days)
        return hours

    @lru_cache(maxsize=4096)  # noqa: B019 — calendars live as long as the config that built them
    def intervals(self, day: dt.date) -> tuple[tuple[int, int], ...]:
        """The open intervals of a local date, as epoch ms (DST-safe through the zone)."""
        out = []
        for a, b in self.day_hours(day):
            start = dt.datetime.combine(day, a, self.tz)
            end = (dt.datetime.combine(day + DAY, dt.time(0), self.tz) if b == dt.time(0)
                   else dt.datetime.combine(day, b, self.tz))
            if end > start:
                out.append((int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
        return tuple(out)

    def _local_day(self, ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ms / 1000, self.tz).date()

    # -- arithmetic ------------------------------------------------------------------------
    def add(self, start_ms: int, seconds: float) -> int:
        """The instant at which ``seconds`` of working time have passed since ``start_ms``."""
        left = int(seconds * 1000)
        if self.always:
            return start_ms + left
        day = self._local_day(start_ms)
        for _ in range(MAX_DAYS):
            for a, b in self.intervals(day):
                if b <= start_ms:
                    continue
                a = max(a, start_ms)
                if b - a >= left:
                    return a + left
                left -= b - a
            day += DAY
        raise ValueError(f"calendar {self.name!r} has no working time in {MAX_DAYS} days")

    def working_ms(self, a_ms: int, b_ms: int) -> int:
        """Working time between two instants (0 when b <= a)."""
        if b_ms <= a_ms:
            return 0
        if self.always:
            return b_ms - a_ms
        total, day, last = 0, self._local_day(a_ms), self._local_day(b_ms)
        while day <= last:
            for a, b in self.intervals(day):
                lo, hi = max(a, a_ms), min(b, b_ms)
                if hi > lo:
                    total += hi - lo
            day += DAY
        return total

    def is_open(self, ms: int) -> bool:
        if self.always:
            return True
        return any(a <= ms < b for a, b in self.intervals(self._local_day(ms)))

    def next_open(self, ms: int) -> int:
        """``ms`` itself when open, else when the team is next at work."""
        if self.always:
            return ms
        day = self._local_day(ms)
        for _ in range(MAX_DAYS):
            for a, b in self.intervals(day):
                if b > ms:
                    return max(a, ms)
            day += DAY
        raise ValueError(f"calendar {self.name!r} has no working time in {MAX_DAYS} days")


ALWAYS = "24/7"


def build(calendars: dict[str, CalendarSection]) -> dict[str, Calendar]:
    """Every configured calendar by name, plus the built-in ``24/7``."""
    out = {ALWAYS: Calendar(ALWAYS, None)}
    out.update({name: Calendar(name, c) for name, c in calendars.items()})
    return out
