"""The settings of one Zalo OA channel, validated at start-up with errors that say where to
find each value."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, SecretStr, field_validator

from tongdai.adapters.base import ChannelSettings, http_base

MAX_WINDOW_HOURS = 168  # Zalo refuses consultation messages 7 days after the last interaction
_DIGITS = re.compile(r"[0-9]{6,25}")


class ZaloSettings(ChannelSettings):
    """Settings of one Zalo OA channel (one Zalo app linked to one OA)."""

    # A failed validation must not echo secrets into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    oa_id: str
    app_id: str
    oa_secret_key: SecretStr
    app_secret: SecretStr
    access_token: SecretStr  # the initial pair; rotated pairs live in the token store
    refresh_token: SecretStr
    api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    reply_window_hours: float = 48
    signature_key: Literal["oa_secret_key", "app_secret"] = "oa_secret_key"
    signature_id: Literal["app_id", "oa_id"] = "app_id"

    @field_validator("oa_id", "app_id", mode="before")
    @classmethod
    def _numeric_id(cls, v: Any, info: Any) -> str:
        # YAML reads an unquoted id as an int: accept it, it is the same id.
        v = str(v).strip() if isinstance(v, int | str) and not isinstance(v, bool) else v
        if not isinstance(v, str) or not _DIGITS.fullmatch(v):
            where = (
                "developers.zalo.me → your app → Settings (App ID)"
                if info.field_name == "app_id"
                else "oa.zalo.me → Settings → OA information (OA ID)"
            )
            raise ValueError(
                f"{info.field_name} is the numeric id Zalo shows in {where}, "
                'e.g. "3608465248940903967"; quote it in YAML'
            )
        return v

    @field_validator("oa_secret_key", "app_secret", "access_token", "refresh_token")
    @classmethod
    def _secret_shape(cls, v: SecretStr, info: Any) -> SecretStr:
        s = v.get_secret_value()
        if not s or any(c.isspace() for c in s):
            raise ValueError(
                f"{info.field_name} must be non-empty and without spaces: paste it "
                "exactly as Zalo shows it (see docs/connect-zalo.md)"
            )
        return v

    _api_base = http_base("api_base", example="https://openapi.zalo.me")
    _oauth_base = http_base("oauth_base", example="https://oauth.zaloapp.com")

    @field_validator("reply_window_hours")
    @classmethod
    def _window(cls, v: float) -> float:
        if not 0 < v <= MAX_WINDOW_HOURS:  # also false for NaN
            raise ValueError(
                f"reply_window_hours must be more than 0 and at most {MAX_WINDOW_HOURS}: replies "
                "are free for 48 h and refused by Zalo (error -230) after 7 days"
            )
        return v
