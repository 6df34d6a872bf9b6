"""When to expect an agent, as a customer reads it, in Vietnamese, English and Chinese.

``{expected}`` is a whole adverbial phrase, so a text reads right whatever the due time is:
soon and the team at work → how long ("trong khoảng 15 phút", "within about 1 hour",
"在30分钟内"); later, or the team away → by when, in the calendar's time zone ("trước 08:30
thứ Hai", "by 08:30 tomorrow", "在周一08:30前"); no target, or one already passed → "sớm
nhất có thể" / "as soon as we can" / "尽快". ``{opens}`` is a time and day ("08:00 ngày mai",
"08:00 on Monday", "周一08:00"). Days are named from the message's own local date: today,
tomorrow, a weekday within the week, a weekday and date beyond it.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

RELATIVE_UP_TO_MS = 2 * 3_600_000  # beyond that, or off hours, a clock time says more

_ASAP = {"vi": "sớm nhất có thể", "en": "as soon as we can", "zh-Hans": "尽快",
         "zh-Hant": "盡快"}
_WEEKDAYS = {
    "vi": ["thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "zh-Hans": ["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
    "zh-Hant": ["週一", "週二", "週三", "週四", "週五", "週六", "週日"],
}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_TODAY = {"vi": "hôm nay", "en": "today", "zh-Hans": "今天", "zh-Hant": "今天"}
_TOMORROW = {"vi": "ngày mai", "en": "tomorrow", "zh-Hans": "明天", "zh-Hant": "明天"}


def _local(ms: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, zone)


def _day(lang: str, when: dt.datetime, ref: dt.date) -> str:
    days = (when.date() - ref).days
    if days <= 0:
        return _TODAY[lang]
    if days == 1:
        return _TOMORROW[lang]
    wd = _WEEKDAYS[lang][when.weekday()]
    if days < 7:
        return f"on {wd}" if lang == "en" else wd
    if lang == "vi":
        return f"{wd}, {when:%d/%m}"
    if lang == "en":
        return f"on {wd} {when.day} {_MONTHS[when.month - 1]}"
    return f"{when.month}月{when.day}日（{wd}）"


def _clock(lang: str, when: dt.datetime, ref: dt.date) -> tuple[str, str]:
    return f"{when:%H:%M}", _day(lang, when, ref)


def opens_phrase(lang: str, at_ms: int, opens_ms: int, zone: ZoneInfo) -> str:
    """When the team is next at work: "08:00 thứ Hai", "08:00 tomorrow", "明天08:00"."""
    hm, day = _clock(lang, _local(opens_ms, zone), _local(at_ms, zone).date())
    return f"{day}{hm}" if lang.startswith("zh") else f"{hm} {day}"


def _duration(lang: str, ms: int) -> str:
    minutes = math.ceil(ms / 60_000)
    if minutes <= 60:
        h, m = 0, max(5, math.ceil(minutes / 5) * 5)
        if m == 60:
            h, m = 1, 0
    else:
        half = math.ceil(minutes / 30)
        h, m = half // 2, 30 * (half % 2)
    if lang == "vi":
        return " ".join(x for x in (f"{h} giờ" if h else "", f"{m} phút" if m else "") if x)
    if lang == "en":
        return " ".join(x for x in (f"{h} hour{'s' * (h > 1)}" if h else "",
                                    f"{m} minutes" if m else "") if x)
    hour, minute = ("小时", "分钟") if lang == "zh-Hans" else ("小時", "分鐘")
    return (f"{h}{hour}" if h else "") + (f"{m}{minute}" if m else "")


def expected_phrase(lang: str, at_ms: int, due_ms: int | None, open_now: bool,
                    zone: ZoneInfo) -> str:
    """When an agent will answer a message written at ``at_ms``, due at ``due_ms``."""
    if due_ms is None or due_ms <= at_ms:
        return _ASAP[lang]
    left = due_ms - at_ms
    if open_now and left <= RELATIVE_UP_TO_MS:
        d = _duration(lang, left)
        return {"vi": f"trong khoảng {d}", "en": f"within about {d}", "zh-Hans": f"在{d}内",
                "zh-Hant": f"在{d}內"}[lang]
    hm, day = _clock(lang, _local(due_ms, zone), _local(at_ms, zone).date())
    if lang == "vi":
        return f"trước {hm} {day}"
    if lang == "en":
        return f"by {hm} {day}"
    return f"在{day}{hm}前"
