"""Zalo's API answers: JSON bodies, and the error codes Zalo puts inside HTTP 200, mapped to
a :class:`tongdai.core.errors.DeliveryError` that says whether to retry."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from tongdai.adapters.zalo.fields import JSON
from tongdai.core.errors import DeliveryError, WindowClosed

# Codes that mean "this access token is no good": refresh and retry once.
TOKEN_ERRORS = frozenset({-216, -220, -124})
_WINDOW_CODES = frozenset({-230, -232})
_BLOCKED_CODES = frozenset({-213, -217, -227, -244})
_QUOTA_CODES = frozenset({-211, -218})
# The app or OA is not set up for this call: a person must fix the configuration.
_SETUP_CODES = frozenset({-204, -205, -209, -212, -219, -221, -223, -224, -235, -240, -242})


def _api_error(what: str, answer: JSON, scrub: Callable[[str], str]) -> DeliveryError:
    """Map a Zalo ``{"error": <code>, "message": ...}`` answer to a DeliveryError."""
    code = answer.get("error")
    text = f"zalo {what}: error {code} {scrub(str(answer.get('message') or ''))}".rstrip()
    if code in _WINDOW_CODES:
        return WindowClosed(
            f"{text}: the user has not interacted with the OA for 7 days; Zalo "
            "accepts consultation messages only within that window"
        )
    if code in _BLOCKED_CODES:
        return DeliveryError(text, retryable=False, code="blocked")
    if code == -32:  # per-minute API limit of the app or the OA
        return DeliveryError(text, retryable=True, retry_after=60, code="rate_limited")
    if code in _QUOTA_CODES:
        return DeliveryError(text, retryable=True, retry_after=3600, code="quota_exceeded")
    if code == -200:  # "Send message failed": Zalo's own transient failure
        return DeliveryError(text, retryable=True, code="server_error")
    if code in _SETUP_CODES:
        return DeliveryError(
            f"{text}: the app or OA is not set up for this (docs/connect-zalo.md)",
            retryable=False,
            code="unauthorized",
        )
    return DeliveryError(text, retryable=False, code="bad_request")  # -201 and the unknown


def _json(resp: httpx.Response) -> JSON | None:
    try:
        answer = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None
