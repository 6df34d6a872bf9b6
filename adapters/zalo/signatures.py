"""Zalo webhook signatures: ``X-ZEvent-Signature: mac=<hex>``, a plain SHA-256 (not an HMAC)
of ``id + raw body + timestamp + key``, in whichever of the four id/key variants a channel
names in its settings."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import orjson

from tongdai.adapters.base import constant_time_equal, header
from tongdai.adapters.zalo.settings import ZaloSettings
from tongdai.core.errors import SignatureError

SIGNATURE_HEADER = "X-ZEvent-Signature"
_MAC = re.compile(r"\s*(?:mac\s*=\s*)?([0-9a-fA-F]{64})\s*", re.IGNORECASE)
SIGNATURE_VARIANTS: tuple[tuple[str, str], ...] = (
    ("app_id", "oa_secret_key"),
    ("app_id", "app_secret"),
    ("oa_id", "oa_secret_key"),
    ("oa_id", "app_secret"),
)


def verify_signature(settings: ZaloSettings, headers: Mapping[str, str], body: bytes) -> None:
    """Check ``X-ZEvent-Signature`` (plain SHA-256 of id + body + timestamp + key)."""
    got = header(headers, SIGNATURE_HEADER)
    if not got:
        raise SignatureError(f"no {SIGNATURE_HEADER} header: not a request from Zalo")
    m = _MAC.fullmatch(got)
    if m is None:
        raise SignatureError(f"{SIGNATURE_HEADER} is not 'mac=<64 hex digits>'")
    mac, ts = m.group(1).lower(), _signed_timestamp(body)
    if ts is None:
        raise SignatureError(f"the body has no timestamp to check {SIGNATURE_HEADER} with")
    s = settings
    if constant_time_equal(mac, signature(s, body, ts, s.signature_id, s.signature_key)):
        return
    # Only Zalo can produce a signature any variant accepts: naming it helps, leaks nothing.
    fits = [
        v
        for v in SIGNATURE_VARIANTS
        if v != (s.signature_id, s.signature_key)
        and constant_time_equal(mac, signature(s, body, ts, *v))
    ]
    hint = (
        f"; it matches signature_id: {fits[0][0]}, signature_key: {fits[0][1]}: set "
        "those in the channel settings"
        if fits
        else "; check oa_secret_key/app_secret and signature_id/signature_key "
        "(docs/connect-zalo.md)"
    )
    raise SignatureError(f"{SIGNATURE_HEADER} does not match this channel{hint}")


def _signed_timestamp(body: bytes) -> str | None:
    """The body's ``timestamp`` as the string Zalo signed."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    ts = event.get("timestamp", event.get("timeStamp")) if isinstance(event, dict) else None
    if ts is None or isinstance(ts, dict | list | bool):
        return None
    return str(ts)


def signature(
    settings: ZaloSettings, body: bytes, timestamp: str, id_field: str, key_field: str
) -> str:
    """``sha256(id + body + timestamp + key)`` in hex, for one variant of the formula."""
    key = getattr(settings, key_field).get_secret_value()
    ident = getattr(settings, id_field)
    return hashlib.sha256(ident.encode() + body + timestamp.encode() + key.encode()).hexdigest()


def matching_variants(
    settings: ZaloSettings, headers: Mapping[str, str], body: bytes
) -> list[tuple[str, str]]:
    """Which (signature_id, signature_key) pairs accept a captured request: to find out
    how your OA signs (docs/connect-zalo.md)."""
    got, ts = header(headers, SIGNATURE_HEADER) or "", _signed_timestamp(body)
    m = _MAC.fullmatch(got)
    if m is None or ts is None:
        return []
    mac = m.group(1).lower()
    return [
        v for v in SIGNATURE_VARIANTS if constant_time_equal(mac, signature(settings, body, ts, *v))
    ]
