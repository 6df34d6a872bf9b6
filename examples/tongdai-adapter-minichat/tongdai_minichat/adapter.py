"""MiniChat ↔ tongdai: a signed JSON webhook in, a JSON REST API out.

Pure translation: no Redis, no globals; the hub calls ``verify`` in the request path,
``parse`` in its ingest workers and ``send`` in its senders.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import ConfigDict, SecretStr

from tongdai.adapters.base import (
    Adapter,
    ChannelFacts,
    ChannelSettings,
    OutboundMessage,
    RateLimit,
    Receipt,
    constant_time_equal,
    header,
    http_base,
    load_json_object,
    must_match,
    transport_error,
)
from tongdai.core.errors import DeliveryError, PayloadError, SignatureError
from tongdai.core.models import EventKind, InboundEvent, RawEvent

SIGNATURE, TIMESTAMP = "X-MiniChat-Signature", "X-MiniChat-Timestamp"
MAX_AGE_S = 300  # a signed request older than this is a replay


class MinichatSettings(ChannelSettings):
    """A MiniChat widget: its API key (Dashboard → Developers) and webhook signing secret."""

    model_config = ConfigDict(hide_input_in_errors=True)  # never echo a key into logs

    api_key: SecretStr
    signing_secret: SecretStr
    api_base: str = "https://api.minichat.example"

    _key = must_match("api_key", pattern=r"mc_(live|test)_[A-Za-z0-9]{16,}",
                      advice="a MiniChat API key starts with mc_live_ or mc_test_ "
                      "(Dashboard → Developers → API keys)")
    _secret = must_match("signing_secret", pattern=r"[\x21-\x7e]{16,}",
                         advice="the signing secret is at least 16 printable characters "
                         "(Dashboard → Developers → Webhooks → Signing secret)")
    _base = http_base("api_base", example="https://api.minichat.example")


class MinichatAdapter(Adapter):
    name = "minichat"
    Settings = MinichatSettings
    kept_headers = ("content-type", TIMESTAMP.lower())

    # -- inbound ------------------------------------------------------------------------------
    def _sign(self, timestamp: str, body: bytes) -> str:
        key = self.settings.signing_secret.get_secret_value().encode()
        return "v1=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        ts = header(headers, TIMESTAMP) or ""
        if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_AGE_S:
            raise SignatureError(f"{TIMESTAMP} is missing or older than {MAX_AGE_S} s")
        if not constant_time_equal(header(headers, SIGNATURE), self._sign(ts, body)):
            raise SignatureError(f"{SIGNATURE} does not match the body")

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        data = load_json_object(raw.body, "MiniChat webhook")
        events = data.get("events")
        if not isinstance(events, list):
            raise PayloadError("a MiniChat webhook carries an 'events' list")
        return [self._event(e) for e in events]

    def _event(self, e: Any) -> InboundEvent:
        try:
            visitor, kind = e["visitor"], e["type"]
            ts = int(datetime.fromisoformat(e["sent_at"]).timestamp() * 1000)
            base = {"dedupe_key": f"mc:{e['id']}", "external_user_id": str(visitor["id"]),
                    "platform_ts_ms": ts, "platform_type": kind,
                    "profile": {"name": visitor.get("name") or ""}}
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"a MiniChat event lacks id, type, visitor.id or sent_at "
                               f"({type(exc).__name__}: {exc})") from None
        if kind == "message":
            return InboundEvent(kind=EventKind.MESSAGE, text=e.get("text"),
                                external_message_id=str(e["id"]), **base)
        return InboundEvent(kind=EventKind.UNSUPPORTED, **base)

    # -- outbound -----------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> Receipt:
        url = f"{self.settings.api_base}/v1/visitors/{message.address}/messages"
        headers = {"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
                   "Idempotency-Key": message.idempotency_key}
        try:
            resp = self.http.post(url, json={"text": message.text or ""}, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, "minichat send") from None
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        if resp.status_code in (200, 201) and isinstance(answer, dict) and answer.get("id"):
            return Receipt(str(answer["id"]), int(time.time() * 1000), answer)
        raise self._error(resp.status_code, answer if isinstance(answer, dict) else {},
                          resp.headers.get("Retry-After"))

    def _error(self, status: int, answer: dict[str, Any], retry_after: str | None
               ) -> DeliveryError:
        why = f"minichat send: HTTP {status} {answer.get('error') or ''!s}".rstrip()
        if status == 429:
            wait = float(retry_after) if (retry_after or "").isdigit() else None
            return DeliveryError(why, retryable=True, retry_after=wait, code="rate_limited")
        if status >= 500 or status in (200, 201):  # a 2xx without an id: the gateway's page
            return DeliveryError(why, retryable=True, code="server_error")
        if status == 401:
            return DeliveryError(f"{why}: the API key was refused; check api_key",
                                 retryable=False, code="unauthorized")
        if status == 410:
            return DeliveryError(why, retryable=False, code="blocked")
        return DeliveryError(why, retryable=False, code="bad_request")

    def facts(self) -> ChannelFacts:
        # No reply window; 10 messages a second per widget; the Idempotency-Key is honoured.
        return ChannelFacts(rate_limits=(RateLimit("channel", 10, 1.0),),
                            redelivery_horizon_s=86400, idempotent_sends=True)

    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        now = time.time()
        body = orjson.dumps({"events": [{
            "id": f"ev_{time.time_ns()}", "type": "message", "text": text,
            "visitor": {"id": user_id, "name": name},
            "sent_at": datetime.fromtimestamp(now).astimezone().isoformat()}]})
        ts = str(int(now))
        return {TIMESTAMP: ts, SIGNATURE: self._sign(ts, body),
                "Content-Type": "application/json"}, body
