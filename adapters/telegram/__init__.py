"""Telegram Bot API adapter: webhook updates in, ``sendMessage`` and friends out.

Updates are read as plain dicts, not through a model layer: the hub needs a few fields per
update, Telegram adds new ones every release, and old payloads lack some (``file_unique_id``).
Anything not understood comes back as ``UNSUPPORTED``: kept and counted, never dropped.

Modules: ``settings`` (the channel's settings), ``events`` (reading updates), ``adapter`` (the
adapter class with its Bot API client).
"""

from tongdai.adapters.telegram.adapter import ALLOWED_UPDATES, SECRET_HEADER, TelegramAdapter
from tongdai.adapters.telegram.events import JSON, parse_update
from tongdai.adapters.telegram.settings import TelegramSettings

__all__ = [
    "ALLOWED_UPDATES",
    "JSON",
    "SECRET_HEADER",
    "TelegramAdapter",
    "TelegramSettings",
    "parse_update",
]
