"""What every config section shares: the strict base model, durations, time zones."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """``30s``, ``2h``, ``7d``, ``250ms`` or a number of seconds → seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 15m, 2h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _tz(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{v!r} is not a time zone; write it like Asia/Ho_Chi_Minh") from None
    return v
