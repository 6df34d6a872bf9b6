"""The settings of one Telegram bot channel, checked at start-up (the token never echoed)."""

from __future__ import annotations

from pydantic import ConfigDict, SecretStr

from tongdai.adapters.base import ChannelSettings, http_base, must_match


class TelegramSettings(ChannelSettings):
    """Settings of one Telegram bot channel."""

    # A failed validation must not echo the token into logs or the console.
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr
    secret_token: SecretStr
    api_base: str = "https://api.telegram.org"

    _token = must_match(
        "bot_token", pattern=r"[0-9]{3,}:[A-Za-z0-9_-]{20,}",
        advice="a bot token looks like '123456789:AAE...' (the bot's numeric id, a colon, "
        "then 20+ letters, digits, _ or -), as BotFather gives it")
    _secret = must_match(
        "secret_token", pattern=r"[A-Za-z0-9_-]{1,256}",
        advice="Telegram allows 1-256 characters of A-Z a-z 0-9 _ - in secret_token")
    _base = http_base("api_base", example="https://api.telegram.org")
