"""A minimal third-party-style adapter, named in config by its ``module:Class`` path.

It proves a new platform plugs in by configuration alone: its own settings model, an HMAC
signature, a JSON format of its own, and sends that it records instead of calling anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

import orjson
from pydantic import SecretStr

from tongdai.adapters.base import (
    Adapter,
    ChannelFacts,
    ChannelSettings,
    OutboundMessage,
    Receipt,
    constant_time_equal,
)
from tongdai.core.errors import PayloadError, SignatureError
from tongdai.core.models import EventKind, InboundEvent, RawEvent

SENT: list[OutboundMessage] = []


class EchoSettings(ChannelSettings):
    signing_key: SecretStr


class EchoAdapter(Adapter):
    name = "echo"
    Settings = EchoSettings

    def _sign(self, body: bytes) -> str:
        return hmac.new(self.settings.signing_key.get_secret_value().encode(), body,
                        hashlib.sha256).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        if not constant_time_equal(headers.get("X-Echo-Signature"), self._sign(body)):
            raise SignatureError("bad X-Echo-Signature")

    def parse(self, raw: RawEvent) -> list[InboundEvent]:
        try:
            d = orjson.loads(raw.body)
            return [InboundEvent(kind=EventKind.MESSAGE, dedupe_key=f"e:{d['id']}",
                                 external_user_id=str(d["user"]), platform_ts_ms=int(d["ts"]),
                                 text=d.get("text"), profile={"name": d.get("name", "")})]
        except (ValueError, KeyError, TypeError) as exc:
            raise PayloadError(f"not an echo event: {exc}") from None

    def send(self, message: OutboundMessage) -> Receipt:
        SENT.append(message)
        return Receipt(external_id=f"echo-{len(SENT)}", sent_ts_ms=int(time.time() * 1000))

    def facts(self) -> ChannelFacts:
        return ChannelFacts(reply_window_s=24 * 3600)

    def simulate(self, text: str, user_id: str, name: str) -> tuple[dict[str, str], bytes]:
        body = orjson.dumps({"id": time.time_ns(), "user": user_id, "ts": int(time.time() * 1000),
                             "text": text, "name": name})
        return {"X-Echo-Signature": self._sign(body), "Content-Type": "application/json"}, body
