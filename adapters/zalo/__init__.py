"""Zalo Official Account adapter: OA webhook events in, consultation messages out.

The Zalo facts this module rests on (sources in docs/connect-zalo.md):

- every id and ``timestamp`` in an event is a string; timestamps are epoch milliseconds;
- a webhook carries ``X-ZEvent-Signature: mac=<hex>``, a plain SHA-256 (not an HMAC) of
  ``id + raw body + timestamp + key``. Public sources disagree on which id and which key: the
  documented ``app_id`` + OA secret key is the default, the others are settings;
- API errors come back inside HTTP 200 as ``{"error": <negative int>, "message": ...}``;
- access tokens last 25 h and refresh tokens are single-use, so a rejected token is rotated
  through ``self.token_store`` (shared by every worker in the hub) and the call retried once;
- users without a Zalo login (``anonymous_send_*``) are answered through another endpoint,
  addressed by their anonymous id *and* the conversation id: our address is
  ``anon:<anonymous_id>:<conversation_id>``.

Modules: ``settings`` (the channel's settings), ``signatures`` (checking a webhook's
signature), ``fields`` and ``events`` (reading an event), ``outbound`` (shaping a reply),
``answers`` (Zalo's API answers and error codes), ``adapter`` (the adapter class).
"""

from tongdai.adapters.zalo.adapter import PROFILE_PATH, TOKEN_PATH, ZaloAdapter
from tongdai.adapters.zalo.answers import TOKEN_ERRORS
from tongdai.adapters.zalo.events import ANONYMOUS_MESSAGES, OA_MESSAGES, USER_MESSAGES
from tongdai.adapters.zalo.fields import JSON
from tongdai.adapters.zalo.outbound import ANON_PATH, ANON_PREFIX, CS_PATH, MAX_TEXT
from tongdai.adapters.zalo.settings import MAX_WINDOW_HOURS, ZaloSettings
from tongdai.adapters.zalo.signatures import (
    SIGNATURE_HEADER,
    SIGNATURE_VARIANTS,
    matching_variants,
    signature,
)

__all__ = [
    "ANONYMOUS_MESSAGES",
    "ANON_PATH",
    "ANON_PREFIX",
    "CS_PATH",
    "JSON",
    "MAX_TEXT",
    "MAX_WINDOW_HOURS",
    "OA_MESSAGES",
    "PROFILE_PATH",
    "SIGNATURE_HEADER",
    "SIGNATURE_VARIANTS",
    "TOKEN_ERRORS",
    "TOKEN_PATH",
    "USER_MESSAGES",
    "ZaloAdapter",
    "ZaloSettings",
    "matching_variants",
    "signature",
]
