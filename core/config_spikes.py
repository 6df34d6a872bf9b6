"""The ``spikes:`` section of ``config/tongdai.yaml``: alerts when one tag (or one channel) gets
far more customers writing than usual for that time of the week (core/workspace/spikes.py,
docs/spikes.md).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from tongdai.core.config_base import _Section, parse_duration
from tongdai.core.errors import ConfigError


class SpikesSection(_Section):
    enabled: bool = True
    # Counting granularity, and the window a spike is counted over (a multiple of bucket).
    bucket: float = 300.0
    window: float = 900.0
    # Seasonal baseline: the same time of the week in the last `weeks` weeks, each taking the
    # windows up to `spread` either side; with fewer than `min_weeks` weeks of history the
    # `recent` windows just before are the baseline instead.
    weeks: int = Field(4, ge=1, le=12)
    min_weeks: int = Field(2, ge=1, le=12)
    spread: float = 3600.0
    recent: int = Field(8, ge=2, le=96)
    # Alert when count > median + sensitivity × max(1.4826 × MAD, √median, 1) and count >=
    # min_count (conversations in the window): a higher sensitivity alerts less often.
    sensitivity: float = Field(4.0, gt=0, le=50)
    min_count: int = Field(10, ge=1)
    cooldown: float = 3600.0       # at most one alert per tag (or channel) this long
    channels: bool = True          # also watch each channel's whole volume
    ignore_tags: list[str] = []    # tags never alerted on
    samples: int = Field(3, ge=0, le=10)  # customers' messages quoted in an alert
    # Teams whose Telegram staff group gets the alerts; unset: every team that has one.
    staff_group_teams: list[str] | None = None

    _durations = field_validator("bucket", "window", "spread", "cooldown", mode="before")(
        classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: float) -> float:
        if v < 60 or 86400 % v:
            raise ValueError(f"{v:g}s does not divide a day into whole buckets of at least a "
                             "minute; write 1m, 5m, 10m, 15m, 30m or 1h")
        return v

    @model_validator(mode="after")
    def _window(self) -> SpikesSection:
        if self.window < self.bucket or self.window % self.bucket:
            raise ValueError(f"window ({self.window:g}s) is not a whole number of buckets "
                             f"({self.bucket:g}s); write a multiple of bucket, like 15m for "
                             "5m buckets")
        if self.window / self.bucket > 24:
            raise ValueError("window spans more than 24 buckets; make bucket larger")
        if self.min_weeks > self.weeks:
            raise ValueError(f"min_weeks ({self.min_weeks}) is more than weeks ({self.weeks}); "
                             "lower min_weeks or raise weeks")
        return self


def check(section: SpikesSection, team_ids: set[str], staff_teams: set[str],
          path: str) -> list[ConfigError]:
    """Cross-checks with the rest of the file: the staff groups named exist."""
    out = []
    for t in section.staff_group_teams or ():
        if t not in team_ids:
            out.append(ConfigError(path, "spikes.staff_group_teams", f"no team {t!r}",
                                   "name a team id from teams"))
        elif t not in staff_teams:
            out.append(ConfigError(path, "spikes.staff_group_teams",
                                   f"team {t!r} has no staff_group",
                                   "give the team a staff_group or leave it out"))
    return out
