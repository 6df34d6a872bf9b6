"""Mailgun-style signed inbound posts (the "store and forward" / "forward" route actions).

Mailgun posts a form (multipart or url-encoded) with ``timestamp``, ``token`` and
``signature`` = hex HMAC-SHA256(signing key, timestamp + token), and, when the route's URL
ends in ``mime``, the whole mail in ``body-mime``. Docs: documentation.mailgun.com, "Receiving
Messages via HTTP through a forward() action" and "Securing webhooks".
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from io import BytesIO

from werkzeug.formparser import parse_form_data

from adapters.base import constant_time_equal, header
from core.errors import PayloadError, SignatureError


def form(headers: Mapping[str, str], body: bytes) -> dict[str, str | bytes]:
    """The posted fields (files as bytes), whatever the form encoding."""
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": header(headers, "content-type") or "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": BytesIO(body),
    }
    _, fields, files = parse_form_data(environ)
    out: dict[str, str | bytes] = {k: fields[k] for k in fields}
    for k in files:  # some senders attach body-mime as a file part
        out[k] = files[k].read()
    return out


def verify(fields: Mapping[str, str | bytes], signing_key: str, max_age_s: float,
           now: float | None = None) -> None:
    """SignatureError unless the form carries a fresh, correct signature."""
    ts, token, sig = (fields.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str) and v for v in (ts, token, sig)):
        raise SignatureError("the form has no timestamp, token and signature fields")
    try:
        age = abs((now or time.time()) - float(ts))
    except ValueError:
        raise SignatureError("the timestamp is not a number") from None
    good = hmac.new(signing_key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    if not constant_time_equal(sig, good):
        raise SignatureError("bad signature: check inbound.webhook.signing_key (Mailgun: "
                             "Settings → API security → HTTP webhook signing key)")
    if age > max_age_s:
        raise SignatureError(f"the signed timestamp is {age:.0f}s old (over {max_age_s:g}s): "
                             "a replay, or a clock out of sync")


def mime(fields: Mapping[str, str | bytes]) -> bytes:
    """The raw mail of the post; PayloadError naming the fix when the route sends none."""
    value = fields.get("body-mime")
    if not value:
        raise PayloadError("the post has no body-mime field: make the Mailgun route forward to "
                           "https://<hub>/webhooks/<channel>/mime (a URL ending in 'mime' "
                           "makes Mailgun send the raw mail)")
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def sign(signing_key: str, timestamp: str, token: str) -> str:
    """The signature Mailgun would send (for ``tongdai simulate`` and tests)."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(),
                    hashlib.sha256).hexdigest()
