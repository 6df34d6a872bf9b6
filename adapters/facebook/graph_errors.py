"""Graph API error answers mapped to ``DeliveryError``: final or retryable, and when."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from tongdai.adapters.facebook.events import JSON
from tongdai.core.errors import DeliveryError

# Codes from the Messenger error-codes page and the Graph API error-handling guide.
_WINDOW_SUBCODES = {2018278, 2018065}  # "This message is sent outside of allowed window"
_RATE_CODES = {4, 17, 32, 613}  # app, user, page and custom throttling
_TEMPORARY_CODES = {1, 2}  # unknown error / service temporarily unavailable


def _retry_after(headers: Mapping[str, str]) -> float:
    """Meta's hint, in seconds: Retry-After, or the BUC header's minutes; else a minute."""
    if (value := headers.get("retry-after") or "").isdigit():
        return float(value)
    try:
        usage = orjson.loads(headers.get("x-business-use-case-usage") or "{}")
        minutes = max(
            (
                u.get("estimated_time_to_regain_access") or 0
                for uses in usage.values()
                for u in uses
            ),
            default=0,
        )
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        minutes = 0
    return float(minutes * 60) if minutes else 60.0


def _delivery_error(
    path: str, status: int, answer: JSON, headers: Mapping[str, str], secrets: tuple[str, ...]
) -> DeliveryError:
    """Map a Graph API error answer to a ``DeliveryError`` that says whether to retry."""
    err = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    code, sub = err.get("code"), err.get("error_subcode")
    desc = str(err.get("message") or f"HTTP {status}")
    for secret in secrets:
        desc = desc.replace(secret, "<redacted>")
    ids = [f"code {code}" + (f"/{sub}" if sub else "")] if code is not None else []
    ids += [f"fbtrace_id {err['fbtrace_id']}"] if err.get("fbtrace_id") else []
    what = f"facebook {path}: {desc}" + (f" ({', '.join(ids)})" if ids else "")
    if code == 190:  # invalid or expired token
        return DeliveryError(
            f"{what}: the Page access token was rejected; generate a new one "
            "and update page_access_token",
            retryable=False,
            code="unauthorized",
        )
    if sub in _WINDOW_SUBCODES or "outside of allowed window" in desc.lower():
        return DeliveryError(what, retryable=False, code="window_closed")
    if code == 551 or sub == 1545041:  # "This person isn't available right now"
        return DeliveryError(what, retryable=False, code="blocked")
    if code in _RATE_CODES or status == 429:
        return DeliveryError(
            what, retryable=True, retry_after=_retry_after(headers), code="rate_limited"
        )
    if code in _TEMPORARY_CODES or status >= 500:
        return DeliveryError(what, retryable=True, code="server_error")
    return DeliveryError(what, retryable=False, code="bad_request")
