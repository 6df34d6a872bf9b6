"""The ``backup:`` section of ``config/tongdai.yaml``: scheduled backups and their retention.

``tongdai backup`` runs by hand at any time; with ``enabled: true`` the scheduler takes one
every ``every`` (one scheduler of many, by a claim in Redis), keeps the newest of each of the
last ``keep_daily`` days and ``keep_weekly`` ISO weeks (UTC), and ``/healthz`` calls the last
good one stale past ``max_age``. What a backup holds: core/workspace/backup.py.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from tongdai.core.config_base import _Section, parse_duration


class BackupSection(_Section):
    enabled: bool = False
    # Where scheduled backups go (one directory each, tongdai-YYYYMMDDTHHMMSSZ); relative:
    # under the data directory. Several hosts: a path every scheduler host shares.
    dir: str = "backups"
    every: float = 86400.0
    keep_daily: int = Field(7, ge=1, le=366)
    keep_weekly: int = Field(4, ge=0, le=520)
    # /healthz says "stale" when the last good backup is older than this
    max_age: float = 26 * 3600.0
    # A failed scheduled backup is tried again after this long (not at every tick).
    retry: float = 900.0
    # Also copy the data keys into scheduled backups (anyone holding the backup can read it).
    with_keys: bool = False

    _durations = field_validator("every", "max_age", "retry", mode="before")(
        classmethod(lambda cls, v: parse_duration(v)))

    @field_validator("every")
    @classmethod
    def _every(cls, v: float) -> float:
        if v < 60:
            raise ValueError(f"{v:g}s is too often: a backup copies the whole hub; write at "
                             "least 1m (usually 1d)")
        return v

    @model_validator(mode="after")
    def _age(self) -> BackupSection:
        if self.max_age < self.every:
            raise ValueError(f"max_age ({self.max_age:g}s) is shorter than every "
                             f"({self.every:g}s): every backup would be reported stale before "
                             "the next is due; make max_age longer than every")
        return self
