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
from email import policy
from email.parser import BytesParser
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import parse_qsl

from tongdai.adapters.base import constant_time_equal, header
from tongdai.core.errors import PayloadError, SignatureError


def form(headers: Mapping[str, str], body: bytes) -> Mapping[str, str | bytes]:
    """The posted fields, ``body-mime`` (and files) as the bytes sent: an 8-bit GB2312 mail
    must reach the parser undecoded (a form library would read it as UTF-8).

    The webhook asks three times per request (signature, one-time token, what to store): the
    last few parses are kept, read-only, so a request's form is parsed once.
    """
    return _parse(header(headers, "content-type") or "", body)


@lru_cache(maxsize=4)
def _parse(ctype: str, body: bytes) -> Mapping[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    if ctype.lower().startswith("multipart/form-data"):
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
        if not msg.is_multipart():
            raise PayloadError("a multipart form without parts (or without its boundary)")
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if name:
                raw = name == "body-mime" or part.get_filename() is not None
                out[name] = data if raw else data.decode("utf-8", "replace")
        return MappingProxyType(out)
    # latin-1 maps each byte to one character and back: the percent-decoded bytes survive
    for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        data = v.encode("latin-1")
        out[k] = data if k == "body-mime" else data.decode("utf-8", "replace")
    return MappingProxyType(out)


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
