"""Labels an agent adds and removes by hand, beside the tags rules and lookups give.

A hand label is a tag like the others: it sits in the conversation's tag set, so the inbox's
tag filter, search, routing conditions, KPIs and integrators see it the same. What tells it
apart is ``td:conv:{id}:labels`` (tag → who added it, when): the console shows it as a hand
label, the API says ``source: "hand"``, and a rule re-tagging the conversation does not make it
a rule's. Removing works on any tag but the ``lang:`` ones (the language detector's, which
routing reads); a rule's tag removed by hand comes back if a later message matches the rule
again.

Each change writes, in one MULTI, the tag set, a timeline system line, the feed event
(``conversation.tagged`` / ``conversation.untagged`` with ``source``) and the audit entry.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import orjson
import redis

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed
from tongdai.core.pipeline.language import fold_latin
from tongdai.core.workspace import access, audit, timeline
from tongdai.core.workspace.access import Principal

MAX_LABEL = 50
RESERVED_PREFIX = "lang:"
SUGGESTIONS = 20
_SPACES = re.compile(r"\s+")


def clean(tag: str) -> str:
    """The label as stored: NFC, spaces squeezed; BadRequest (``label_invalid``) when empty,
    too long, holding control characters, or a ``lang:`` tag."""
    tag = _SPACES.sub(" ", unicodedata.normalize("NFC", tag or "")).strip()
    if not tag or len(tag) > MAX_LABEL or any(unicodedata.category(c) == "Cc" for c in tag):
        raise BadRequest(f"a label is 1 to {MAX_LABEL} characters, without control "
                         "characters").because("label_invalid", max=MAX_LABEL)
    if tag.lower().startswith(RESERVED_PREFIX):
        raise BadRequest("lang: tags are the language detector's; they cannot be set or "
                         "removed by hand").because("label_reserved", tag=tag)
    return tag


def listing(hub: Hub, principal: Principal, conv_id: str) -> list[dict[str, Any]]:
    """The conversation's tags, each with ``source`` (``hand``: ``by`` and ``ts`` too; else
    ``rule``), hand labels and rules' tags in name order."""
    conv = access.conversation(hub, principal, conv_id)
    hand = hub.redis.hgetall(hub.keys.conversation_labels(conv_id))
    out = []
    for tag in conv.tags:
        who = hand.get(tag.encode())
        if who is not None:
            d = orjson.loads(who)
            out.append({"tag": tag, "source": "hand", "by": d.get("by"), "ts": d.get("ts")})
        else:
            out.append({"tag": tag, "source": "rule", "by": None, "ts": None})
    return out


def suggestions(hub: Hub, q: str = "") -> list[str]:
    """Labels to offer as the agent types: hand labels used before (latest first), then the
    tagging rules' tags, matching ``q`` at a word's start, without case or accents."""
    used = [t.decode() for t in hub.redis.zrevrange(hub.keys.labels_used(), 0, 999)]
    rules = sorted({r.tag for r in hub.config.hub.tagging.rules})
    want = fold_latin(q.strip())
    out: list[str] = []
    for tag in dict.fromkeys(used + rules):
        folded = fold_latin(tag)
        if not want or folded.startswith(want) or any(
                w.startswith(want) for w in re.split(r"[\s_:/-]+", folded)):
            out.append(tag)
        if len(out) == SUGGESTIONS:
            break
    return out


def _change(hub: Hub, principal: Principal, conv_id: str, tag: str, add: bool) -> bool:
    access.conversation(hub, principal, conv_id)
    tag = clean(tag)
    k, now = hub.keys, now_ms()
    tk, lk, ck = k.conversation_tags(conv_id), k.conversation_labels(conv_id), k.conversation(conv_id)
    mid = timeline.next_id(hub)
    verb = "labeled" if add else "unlabeled"

    def change(pipe: redis.client.Pipeline) -> bool:
        has = pipe.sismember(tk, tag)
        if has == add:
            return False  # already so: a retry, or two agents at once
        channel = pipe.hget(ck, "channel")
        if channel is None:
            raise NotFound(f"no conversation {conv_id}")
        source = "hand" if add or pipe.hexists(lk, tag) else "rule"
        text = (f"{principal.name} added the label {tag}" if add
                else f"{principal.name} removed the label {tag}")
        line = timeline.line(hub, conv_id, channel.decode(), principal.name, text, now,
                             {"action": verb, "tag": tag, "source": source})
        pipe.multi()
        if add:
            pipe.sadd(tk, tag)
            pipe.hset(lk, tag, orjson.dumps({"by": principal.name, "ts": now}))
            pipe.zadd(k.labels_used(), {tag: now})
        else:
            pipe.srem(tk, tag)
            pipe.hdel(lk, tag)
        timeline.write(hub, pipe, conv_id, mid, line)
        feed.publish(hub, {"type": "conversation.tagged" if add else "conversation.untagged",
                           "conversation_id": conv_id, "tag": tag, "source": source,
                           "by": principal.name, "message_id": mid, "ts": now}, pipe)
        audit.record(hub, principal.name, f"conversation.{verb}", conv_id,
                     {"tag": tag, "source": source, "message_id": mid}, pipe)
        return True

    return bool(hub.redis.transaction(change, tk, lk, ck, value_from_callable=True))


def add(hub: Hub, principal: Principal, conv_id: str, tag: str) -> bool:
    """Label the conversation by hand; False when it already has that tag (nothing written)."""
    return _change(hub, principal, conv_id, tag, True)


def remove(hub: Hub, principal: Principal, conv_id: str, tag: str) -> bool:
    """Take a tag off (a hand label or a rule's); False when it does not have it."""
    return _change(hub, principal, conv_id, tag, False)
