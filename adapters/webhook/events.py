"""Reading a declarative channel's webhook bodies: the events' list, then each event's fields,
by the expressions of ``events:`` compiled once when the channel is built.

An event the mapping cannot read (its customer id expression gives null, its timestamp is not
one) is not dropped and does not hold back the others of its body: it comes back as an
*unmatched* event that the core files as a dead letter naming the failing expression, while the
body's other events are stored. ``tongdai deadletter replay`` runs the body again once the
mapping is fixed (what was stored is recognised, not stored twice).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from tongdai.adapters.webhook.expressions import EvaluationError, Getter, getter, truthy
from tongdai.adapters.webhook.settings import EventsMapping
from tongdai.core.errors import PayloadError
from tongdai.core.models import Attachment, EventKind, InboundEvent

_KIND = {"message": EventKind.MESSAGE, "edit": EventKind.EDIT, "delete": EventKind.EDIT,
         "postback": EventKind.POSTBACK, "follow": EventKind.FOLLOW,
         "unfollow": EventKind.UNFOLLOW, "system": EventKind.SYSTEM,
         "unsupported": EventKind.UNSUPPORTED}
_ATTACHMENT_KEYS = ("url", "file_id", "name", "mime")


class Unmatched(Exception):
    """One event the mapping cannot read; the message names the expression and the value."""


def load_body(body: bytes, platform: str) -> Any:
    """The body as JSON (an object or a list), or PayloadError (→ 400 at the webhook)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(f"a {platform} webhook body is not valid JSON: {e}") from None
    if not isinstance(data, dict | list):
        raise PayloadError(f"a {platform} webhook body is a JSON object or list, got "
                           f"{type(data).__name__}")
    return data


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


class EventReader:
    """The compiled ``events:`` mapping of one channel."""

    def __init__(self, m: EventsMapping, platform: str) -> None:
        self.platform = platform
        self.mapping = m
        g = {name: getter(expr) for name in (
            "list", "kind", "skip_when", "id", "customer_id", "address", "message_id", "text",
            "attachments", "timestamp", "display_name", "reply_to", "target_id", "payload")
            if (expr := getattr(m, name)) is not None}
        self.events: Getter = g["list"]
        self.get: dict[str, Getter] = g
        self.kinds = dict(m.kinds)
        self.other = m.other_kinds

    def read(self, body: bytes, received_ms: int) -> list[InboundEvent]:
        """Every event of a body: read, ignored, or unmatched (see the module's docstring)."""
        data = load_body(body, self.platform)
        try:
            events = self.events(data)
        except EvaluationError as exc:
            raise PayloadError(f"events.list {exc}") from None
        if events is None:
            raise PayloadError(f"events.list {self.mapping.list!r} gave null on this body: "
                               "fix the expression or check what the platform sent")
        if not isinstance(events, list):
            events = [events]
        out: list[InboundEvent] = []
        problems: list[str] = []
        for i, item in enumerate(events):
            try:
                ev = self.event(item, received_ms)
            except (Unmatched, EvaluationError) as exc:
                problems.append(f"event {i + 1} of {len(events)}: {exc}")
                continue
            if ev is not None:
                out.append(ev)
        if problems:
            # One dead letter for the body, naming every event that failed; the others stand.
            why = (f"{self.platform} mapping: " + "; ".join(problems) + ". Fix the mapping "
                   "under events: (docs/webhook-adapter.md), then `tongdai deadletter replay`")
            key = "unmatched:" + hashlib.blake2b(body, digest_size=12).hexdigest()
            out.append(InboundEvent(EventKind.UNSUPPORTED, key, "", received_ms, unmatched=why))
        return out

    def _need(self, name: str, item: Any) -> Any:
        value = self.get[name](item)
        if value is None or value == "":
            expr = getattr(self.mapping, name)
            raise Unmatched(f"events.{name} {expr!r} gave {'null' if value is None else 'empty'}")
        return value

    def event(self, item: Any, received_ms: int) -> InboundEvent | None:
        """One event, or None when the mapping says to ignore it."""
        get = self.get
        if "skip_when" in get and truthy(get["skip_when"](item)):
            return None
        kind_name = "message"
        if "kind" in get:
            raw_kind = _text(get["kind"](item)) or ""
            kind_name = self.kinds.get(raw_kind, self.other)
        else:
            raw_kind = "message"
        if kind_name == "ignore":
            return None
        user = _text(self._need("customer_id", item))
        ts_ms = self._timestamp(item) if "timestamp" in get else received_ms
        ev_id = _text(get["id"](item)) if "id" in get else None
        mid = _text(get["message_id"](item)) if "message_id" in get else None
        if ev_id is None and mid is None:
            names = " nor ".join(f"events.{n} {getattr(self.mapping, n)!r}"
                                 for n in ("id", "message_id") if n in get)
            raise Unmatched(f"neither {names} gave an id")
        kind = _KIND[kind_name]
        ev = InboundEvent(kind, f"e:{ev_id}" if ev_id else f"m:{mid}", user, ts_ms,
                          platform_type=raw_kind)
        if "address" in get:
            ev.address = _text(get["address"](item))
        if "display_name" in get and (name := _text(get["display_name"](item))):
            ev.profile = {"name": name}
        if kind_name in ("edit", "delete"):
            target = _text(self._need("target_id", item))
            ev.target_ids = [f"m:{target}"]
            ev.text = (self.mapping.deleted_text if kind_name == "delete"
                       else _text(get["text"](item)) if "text" in get else None)
            if ev_id is None:  # one edit of a message per instant
                ev.dedupe_key = f"x:{target}:{ts_ms}"
            return ev
        if kind_name == "message" and mid is not None:
            # messages under their platform id: an edit or delete names them by it
            ev.dedupe_key, ev.external_message_id = f"m:{mid}", mid
        if "text" in get:
            ev.text = _text(get["text"](item))
        if "attachments" in get:
            ev.attachments = self._attachments(get["attachments"](item))
        if "reply_to" in get and (reply := _text(get["reply_to"](item))):
            ev.reply_to = f"m:{reply}"
        if "payload" in get:
            ev.payload = _text(get["payload"](item))
        if kind == EventKind.MESSAGE and ev.text is None and not ev.attachments:
            ev.kind = EventKind.UNSUPPORTED  # a kind of message the mapping does not read
        return ev

    def _timestamp(self, item: Any) -> int:
        value = self.get["timestamp"](item)
        unit = self.mapping.timestamp_unit
        expr = f"events.timestamp {self.mapping.timestamp!r}"
        if value is None:
            raise Unmatched(f"{expr} gave null")
        try:
            if unit == "iso":
                at = datetime.fromisoformat(str(value))
                if at.tzinfo is None:  # no offset: UTC, not this server's zone
                    at = at.replace(tzinfo=UTC)
                return int(at.timestamp() * 1000)
            number = float(value)
        except (TypeError, ValueError):
            raise Unmatched(f"{expr} gave {str(value)[:40]!r}, not a time in "
                            f"{'ISO 8601' if unit == 'iso' else unit}") from None
        return int(number * 1000) if unit == "s" else int(number)

    def _attachments(self, value: Any) -> list[Attachment]:
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        out = []
        for a in items:
            if not isinstance(a, dict):
                continue
            found = Attachment(str(a.get("kind") or "file"))
            for k in _ATTACHMENT_KEYS:
                if a.get(k) is not None:
                    setattr(found, k, _text(a[k]))
            if isinstance(a.get("size"), int):
                found.size = a["size"]
            if isinstance(a.get("meta"), dict):
                found.meta = {k: v for k, v in a["meta"].items() if v is not None}
            out.append(found)
        return out
