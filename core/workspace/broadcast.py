"""Proactive broadcasts: one message to a segment of customers, each in their conversation.

A broadcast is a segment (customers whose conversation carries a tag and was active in a time
window, on given channels, with given attributes — or the customers of listed conversations)
and templates per channel and language (``{{customer.first_name}}``: canned replies' renderer,
the given name where the customer's language puts it). ``plan`` says for one customer whether
and how they would be messaged: the platform's window for the hub's own messages (Messenger
24 h, Zalo's, …: no message tag is used, so outside it the customer is skipped with the
reason), an opt-out, a channel that is disabled or blocked, no template for their channel and
language. ``dry_run`` counts those per channel; ``broadcast_send`` sends, resumably.

Stored: ``td:bc:{id}`` (the spec and its state), ``td:bc:index`` (ids by creation). Only
supervisors and admins create, see and send broadcasts; a supervisor's segment holds only
conversations of their teams' queues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import Conversation
from tongdai.core.pipeline import store
from tongdai.core.workspace import access, audit
from tongdai.core.workspace.access import Principal
from tongdai.core.workspace.broadcast_plan import PLAN_CHUNK, lang_of, plan_many
from tongdai.core.workspace.canned import _VARIABLE

MAX_RECIPIENTS = 20_000
MAX_SCAN = 50_000  # conversations looked at for a tag segment
STATUSES = ("open", "pending", "resolved")
ATTRIBUTES = ("tier", "lang", "queue", "status")
VARIABLES = ("customer.name", "customer.first_name", "conversation.id")


@dataclass(slots=True)
class Segment:
    tag: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    channels: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    conversations: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {"tag": self.tag, "since": self.since_ms, "until": self.until_ms,
                "channels": self.channels, "attributes": self.attributes,
                "conversations": self.conversations}

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Segment:
        def ms(v: Any, what: str) -> int | None:
            if v in (None, ""):
                return None
            if isinstance(v, bool) or not isinstance(v, int | float | str) or not str(
                    v).lstrip("-").isdigit():
                raise BadRequest(f"segment.{what}: a time in ms since the epoch")
            return int(v)
        attrs = d.get("attributes") or {}
        if not isinstance(attrs, dict) or any(k not in ATTRIBUTES for k in attrs):
            raise BadRequest(f"segment.attributes: keys among {', '.join(ATTRIBUTES)}")
        seg = cls(tag=(d.get("tag") or "").strip() or None, since_ms=ms(d.get("since"), "since"),
                  until_ms=ms(d.get("until"), "until"),
                  channels=[str(c) for c in d.get("channels") or [] if str(c).strip()],
                  attributes={k: str(v) for k, v in attrs.items() if str(v).strip()},
                  conversations=[str(c).strip().lstrip("#") for c in d.get("conversations") or []
                                 if str(c).strip()])
        if not seg.tag and not seg.conversations and not seg.attributes and not seg.channels:
            raise BadRequest("segment: give a tag, channels, attributes or conversations "
                             "(a broadcast to everyone is not offered)").because("bc_empty")
        if seg.since_ms and seg.until_ms and seg.since_ms > seg.until_ms:
            raise BadRequest("segment: since is after until")
        return seg


@dataclass(slots=True)
class Broadcast:
    id: str
    name: str
    segment: Segment
    # "*" (any), a language ("vi", "en", "zh", "zh-Hans"), a channel id, or "channel:lang"
    templates: dict[str, str]
    created_by: str
    created_ts_ms: int
    state: str = "draft"  # draft → sending → done (or stopped: resumable)
    started_ts_ms: int | None = None
    finished_ts_ms: int | None = None
    total: int | None = None  # recipients frozen at the first send

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "segment": self.segment.to_api(),
                "templates": self.templates, "created_by": self.created_by,
                "created_ts": self.created_ts_ms, "state": self.state,
                "started_ts": self.started_ts_ms, "finished_ts": self.finished_ts_ms,
                "total": self.total}


def check_templates(templates: dict[str, str], hub: Hub) -> dict[str, str]:
    """Templates keyed ``*``, a language, a channel or ``channel:lang``; only known
    variables (a typo would otherwise reach every customer as ``{{custmer.name}}``)."""
    if not isinstance(templates, dict) or not any(str(v).strip() for v in templates.values()):
        raise BadRequest("templates: give at least one text (key '*' for every channel and "
                         "language)").because("bc_no_template")
    out = {}
    for key, text in templates.items():
        text = str(text)
        if not text.strip():
            continue
        channel = key.partition(":")[0]
        if key != "*" and ":" in key and channel not in hub.adapters:
            raise BadRequest(f"templates.{key}: no channel {channel!r}")
        for m in _VARIABLE.finditer(text):
            if m.group(1) not in VARIABLES:
                raise BadRequest(f"templates.{key}: unknown variable {{{{{m.group(1)}}}}}; "
                                 f"use {', '.join(VARIABLES)}").because(
                    "bc_variable", variable=m.group(1))
        if len(text) > 2000:
            raise BadRequest(f"templates.{key}: at most 2000 characters")
        out[key] = text
    return out


def draft(hub: Hub, principal: Principal, name: str, segment: dict[str, Any],
          templates: dict[str, str]) -> Broadcast:
    """A checked broadcast, not stored (id ""): what ``create`` stores, what a dry run of an
    unsaved form counts."""
    access.require(principal, "supervisor")
    seg = Segment.from_api(segment)
    for c in seg.channels:
        if c not in hub.adapters:
            raise BadRequest(f"segment.channels: no channel {c!r}")
    tpl = check_templates(templates, hub)
    return Broadcast("", (name or "").strip()[:200], seg, tpl, principal.name, now_ms())


def create(hub: Hub, principal: Principal, name: str, segment: dict[str, Any],
           templates: dict[str, str]) -> Broadcast:
    b = draft(hub, principal, name, segment, templates)
    bid = b.id = str(hub.redis.incr(hub.keys.seq("broadcast")))
    seg, tpl, b.name = b.segment, b.templates, b.name or f"#{bid}"
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(hub.keys.broadcast(bid), mapping={
        "name": b.name, "segment": orjson.dumps(seg.to_api()), "templates": orjson.dumps(tpl),
        "by": b.created_by, "created": b.created_ts_ms, "state": b.state,
        "teams": ",".join(sorted(principal.teams)) if not principal.is_admin else "*"})
    pipe.zadd(hub.keys.broadcast("index"), {bid: int(bid)})
    audit.record(hub, principal.name, "broadcast.created", bid, {"name": b.name}, pipe)
    pipe.execute()
    return b


def _load(hub: Hub, bid: str) -> tuple[Broadcast, dict[str, str]]:
    h = hub.redis.hgetall(hub.keys.broadcast(bid)) if bid.isdigit() else {}
    if not h:
        raise NotFound(f"no broadcast {bid}")
    s = {k.decode(): v.decode() for k, v in h.items()}
    seg = orjson.loads(s["segment"])
    b = Broadcast(bid, s["name"], Segment(seg.get("tag"), seg.get("since"), seg.get("until"),
                                          seg.get("channels") or [],
                                          seg.get("attributes") or {},
                                          seg.get("conversations") or []),
                  orjson.loads(s["templates"]), s.get("by", ""), int(s.get("created", 0)),
                  s.get("state", "draft"), int(s["started"]) if s.get("started") else None,
                  int(s["finished"]) if s.get("finished") else None,
                  int(s["total"]) if s.get("total") else None)
    return b, s


def get(hub: Hub, principal: Principal, bid: str) -> Broadcast:
    """A broadcast the principal may see: supervisors those created within their teams."""
    access.require(principal, "supervisor")
    b, s = _load(hub, bid)
    teams = s.get("teams", "*")
    if not principal.is_admin and (teams == "*" or not set(teams.split(",")) & principal.teams):
        raise NotFound(f"no broadcast {bid}")
    return b


def list_all(hub: Hub, principal: Principal, limit: int = 50) -> list[Broadcast]:
    access.require(principal, "supervisor")
    out = []
    for bid in hub.redis.zrevrange(hub.keys.broadcast("index"), 0, 499):
        try:
            out.append(get(hub, principal, bid.decode()))
        except NotFound:
            continue
        if len(out) >= limit:
            break
    return out


def as_principal(hub: Hub, bid: str) -> Principal:
    """The principal a broadcast sends as: its creator's role scope (teams), frozen."""
    _b, s = _load(hub, bid)
    teams = s.get("teams", "*")
    if teams == "*":
        return Principal(s.get("by", "?"), "admin")
    return Principal(s.get("by", "?"), "supervisor", frozenset(teams.split(",")))


# -- the segment -------------------------------------------------------------------------------
def _matches(hub: Hub, seg: Segment, conv: Conversation, tier: str | None) -> bool:
    if seg.tag and seg.tag not in conv.tags:
        return False
    if seg.until_ms is not None and conv.created_ts_ms > seg.until_ms:
        return False
    if seg.since_ms is not None and conv.updated_ts_ms < seg.since_ms:
        return False
    if seg.channels and conv.channel_id not in seg.channels:
        return False
    for k, v in seg.attributes.items():
        have = {"tier": tier, "queue": conv.queue, "status": conv.status.value,
                "lang": lang_of(conv)}[k]
        if k == "lang" and have and v and (have == v or have.startswith(v + "-")):
            continue
        if (have or "") != v:
            return False
    return True


def recipients(hub: Hub, principal: Principal, seg: Segment) -> list[tuple[str, str]]:
    """(customer, conversation) pairs, one per customer, in a stable order: the listed
    conversations' customers, else those whose conversation matches the tag, window, channels
    and attributes. The conversation is the customer's current one (where their answer lands)
    when the principal may see it, else the one that matched."""
    if seg.conversations:
        convs = []
        for cid in seg.conversations:
            try:
                convs.append(access.conversation(hub, principal, cid))
            except NotFound:
                continue
    else:
        ids: list[bytes] = []
        low = seg.since_ms if seg.since_ms is not None else "-inf"
        for status in STATUSES:
            ids += hub.redis.zrevrangebyscore(hub.keys.conversations_by_status(status), "+inf",
                                              low, start=0, num=MAX_SCAN)
        found = store.get_conversations(hub, list(dict.fromkeys(i.decode() for i in ids)))
        convs = [c for c in found if c is not None and access.can_see(hub, principal, c)]
    pipe = hub.redis.pipeline(transaction=False)
    for conv in convs:
        pipe.hmget(hub.keys.customer(conv.customer_id), ["tier", "conv"])
    out: dict[str, str] = {}
    for conv, (tier, current) in zip(convs, pipe.execute(), strict=True):
        if conv.customer_id in out or not _matches(
                hub, Segment(None if seg.conversations else seg.tag,
                             None if seg.conversations else seg.since_ms,
                             None if seg.conversations else seg.until_ms,
                             [] if seg.conversations else seg.channels, seg.attributes),
                conv, tier.decode() if tier else None):
            continue
        target = conv.id
        if current and current.decode() != conv.id:
            try:
                target = access.conversation(hub, principal, current.decode()).id
            except NotFound:
                pass
        out[conv.customer_id] = target
        if len(out) > MAX_RECIPIENTS:
            raise BadRequest(f"the segment holds more than {MAX_RECIPIENTS} customers; narrow "
                             "it (a shorter window, a tag, channels)").because("bc_too_many")
    return sorted(out.items(), key=lambda p: int(p[0]) if p[0].isdigit() else 0)


def dry_run(hub: Hub, principal: Principal, b: Broadcast) -> dict[str, Any]:
    """What sending now would do: per channel, would send and would skip by reason, and one
    rendered sample per channel and language."""
    now = now_ms()
    pairs = recipients(hub, principal, b.segment)
    channels: dict[str, dict[str, Any]] = {}
    samples: dict[str, str] = {}
    totals = {"customers": len(pairs), "would_send": 0, "would_skip": 0}
    plans = (p for i in range(0, len(pairs), PLAN_CHUNK)
             for p in plan_many(hub, b, pairs[i:i + PLAN_CHUNK], now))
    for p in plans:
        c = channels.setdefault(p.channel or "-", {"would_send": 0, "would_skip": {}})
        if p.skip:
            c["would_skip"][p.skip] = c["would_skip"].get(p.skip, 0) + 1
            totals["would_skip"] += 1
        else:
            c["would_send"] += 1
            totals["would_send"] += 1
            samples.setdefault(f"{p.channel}:{p.lang or '*'}", p.text or "")
    return {"totals": totals, "channels": channels, "samples": samples}
