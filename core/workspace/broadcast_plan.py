"""Whether and how each customer of a broadcast gets it: the plan (``core/workspace/broadcast.py``
has the segment and the dry run, ``broadcast_send.py`` the sending).

A plan reads the customer (opt-out, erasure, merge, name), their conversation (channel,
language) and their identities with the platform's window for the hub's own messages — for
many customers at once: ``plan_many`` reads a chunk of customers in one round trip (plus one
for the name keys), so a dry run of 20,000 customers makes ~80 round trips, not ~80,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tongdai.core.hub import Hub
from tongdai.core.identity.names import given_name
from tongdai.core.models import AuthorKind, Conversation
from tongdai.core.pipeline import outbound, store
from tongdai.core.workspace.canned import _VARIABLE, fill

if TYPE_CHECKING:
    from tongdai.core.workspace.broadcast import Broadcast

PLAN_CHUNK = 250  # customers planned per round trip
_SPACES = re.compile(r"[ \t]{2,}")
_BEFORE_PUNCT = re.compile(r"[ \t]+([,.!?;:，。！？])")


@dataclass(slots=True)
class Plan:
    customer_id: str
    conv_id: str
    channel: str  # where it goes, or the channel the skip is about ("" none)
    lang: str = ""
    text: str | None = None
    skip: str = ""  # a reason code: opted_out, window_closed, never_wrote, no_identity, ...
    detail: str = ""


def lang_of(conv: Conversation) -> str:
    """The conversation's language tag (``lang:zh-Hant`` before ``lang:zh``), or ""."""
    return next((t[5:] for t in sorted(conv.tags) if t.startswith("lang:")
                 and "-" in t), None) or next(
        (t[5:] for t in conv.tags if t.startswith("lang:")), "")


def pick_template(templates: dict[str, str], channel: str, lang: str) -> str | None:
    """channel:lang, channel, lang, the language's family (zh for zh-Hans), then ``*``."""
    base = lang.partition("-")[0]
    for key in (f"{channel}:{lang}", f"{channel}:{base}", channel, lang, base, "*"):
        if key and key in templates:
            return templates[key]
    return None


def render(template: str, name: str | None, lang: str, conv_id: str) -> str:
    """The template for one customer; a variable without a value becomes nothing (never the
    ``{{…}}`` a canned reply leaves for the agent to fill: nobody reads it before it goes)."""
    text = fill(template, {"customer.name": name, "conversation.id": conv_id,
                           "customer.first_name": given_name(name, lang or None)})
    text = _VARIABLE.sub("", text)
    return _BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()


def plan(hub: Hub, b: Broadcast, customer_id: str, conv_id: str, now: int) -> Plan:
    """Whether and how this customer gets the broadcast now (reads only)."""
    return plan_many(hub, b, [(customer_id, conv_id)], now)[0]


def plan_many(hub: Hub, b: Broadcast, pairs: list[tuple[str, str]], now: int) -> list[Plan]:
    """``plan`` for (customer, conversation) pairs, read together: one round trip for their
    customers, conversations and identities, one for the keys of their names."""
    from tongdai.core.workspace.search import _prefetch

    k = hub.keys
    pipe = hub.redis.pipeline(transaction=False)
    pipe.hgetall(k.channels_disabled())
    for customer_id, conv_id in pairs:
        pipe.hgetall(k.customer(customer_id))
        pipe.hgetall(k.conversation(conv_id))
        pipe.smembers(k.conversation_tags(conv_id))
        pipe.hgetall(k.customer_identities(customer_id))
        pipe.hgetall(k.customer_last_inbound(customer_id))
    off, *rows = pipe.execute()
    _prefetch(hub, [cust[b"name"].decode() for cust in rows[::5] if cust.get(b"name")])
    return [_plan(hub, b, customer_id, conv_id, rows[5 * i:5 * i + 5], off, now)
            for i, (customer_id, conv_id) in enumerate(pairs)]


def _plan(hub: Hub, b: Broadcast, customer_id: str, conv_id: str, rows: list, off: dict,
          now: int) -> Plan:
    raw_cust, raw_conv, tags, idents, last_in = rows
    p = Plan(customer_id, conv_id, "")
    conv = store.conversation_from(conv_id, raw_conv, tags)
    if conv is None:
        p.skip = "not_found"
        return p
    h = {a.decode(): v.decode() for a, v in raw_cust.items()}
    p.channel, p.lang = conv.channel_id, lang_of(conv)
    if not h or "erased" in h or h.get("merged_into"):
        p.skip = "erased" if "erased" in h else "merged"
        return p
    if h.get("optout"):
        p.skip = "opted_out"
        return p
    states = [s for s in outbound.states_from(hub, idents, last_in, raw_cust, off,
                                              AuthorKind.BOT, now, reveal=False)
              if not b.segment.channels or s.channel_id in b.segment.channels]
    if not states:
        p.skip, p.detail = "no_identity", "no identity on the broadcast's channels"
        return p
    reachable = sorted((s for s in states if s.open),
                       key=lambda s: s.channel_id != conv.channel_id)
    if not reachable:
        best = next((s for s in states if s.channel_id == conv.channel_id), states[0])
        p.channel, p.skip, p.detail = best.channel_id, best.reason_code or "unreachable", \
            best.reason
        return p
    p.channel = reachable[0].channel_id
    template = pick_template(b.templates, p.channel, p.lang)
    if template is None:
        p.skip, p.detail = "no_template", f"no template for {p.channel} in {p.lang or '?'}"
        return p
    name = hub.keyring.decrypt_text(h.get("name"), b"name") if h.get("name") else None
    p.text = render(template, (name or "").strip() or None, p.lang, conv_id)
    if not p.text:
        p.skip = "no_template"
    return p
