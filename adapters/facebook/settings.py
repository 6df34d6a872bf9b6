"""The settings of one Facebook Page channel, checked at start-up with fixes a person can act on."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ConfigDict, SecretStr, field_validator

from tongdai.adapters.base import ChannelSettings, http_base, must_match


class FacebookSettings(ChannelSettings):
    """Settings of one Facebook Page channel."""

    # A failed validation must not echo a token or secret into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    page_id: str
    page_access_token: SecretStr
    app_secret: SecretStr
    verify_token: SecretStr
    graph_base: str = "https://graph.facebook.com/v25.0"

    @field_validator("page_id", mode="before")
    @classmethod
    def _page_id_shape(cls, v: Any) -> str:
        v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # YAML: unquoted
        if not isinstance(v, str) or not re.fullmatch(r"[0-9]{5,20}", v):
            raise ValueError(
                "page_id is the Page's numeric id, e.g. '104857600123456' (Meta Business Suite "
                "→ Settings → Page, or the Page's About → Page transparency)"
            )
        return v

    _token = must_match(
        "page_access_token", pattern=r"[A-Za-z0-9_|.-]{20,}",
        advice="a Page access token is one long word of letters and digits (it usually starts "
        "with EAA), as Meta app → Messenger → Settings → Generate token gives it; no quotes, "
        "spaces or 'Bearer '")
    _secret = must_match(
        "app_secret", pattern=r"[0-9a-fA-F]{32}",
        advice="the app secret is 32 hexadecimal characters: Meta app → App settings → Basic "
        "→ App secret → Show (not the app id, not a token)")
    _verify = must_match(
        "verify_token", pattern=r"[\x21-\x7e]{1,256}",
        advice="verify_token is a word you choose (1-256 printable ASCII characters, no "
        "spaces) and type again in the Meta app's webhook settings")
    _base = http_base("graph_base", example="https://graph.facebook.com/v25.0")
