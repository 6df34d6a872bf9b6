"""Rules on the business's answers: ``tag_when`` under a lookup (core/config_lookups.py).

A reactor on the change feed (``lookups``), so neither ingest nor a console waits on the
business's system: for each customer message it looks at the conversation's tags, and for
each lookup with a ``tag_when`` rule that could apply (its ``tags_any``) it reads the answer —
from the cache, else fetched here, bounded by the lookup's timeout and circuit breaker — and
gives the conversation each matching rule's tag, with a system line naming the lookup, the
tag and the canned reply suggested (never the answer itself: that stays in the cache).
Adding a tag the conversation has is nothing, so a redelivered event changes nothing. The
console shows the suggested canned reply beside the lookup's result (computed from the cached
answer when it is read, not stored).

For the self-service bot (#14): :func:`answer` is what a rule's ``answer:`` tells the customer
("giao dịch #123456 đang chờ ngân hàng xác nhận..."), in their language, for a bot to send
instead of a queue wait (core/selfservice/bot.py does not call it yet: docs/lookups.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import jmespath
import redis
from jmespath.exceptions import JMESPathError

from tongdai.core.clock import now_ms
from tongdai.core.errors import NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import lookups, timeline

log = logging.getLogger(__name__)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@feed.reactor("lookups")
def react(hub: Hub, events: list[feed.FeedEvent]) -> None:
    """Customer messages → the lookups' rules on their conversations (once per batch each)."""
    if not any(lk.tag_when for lk in hub.config.hub.lookups.values()):
        return
    seen: dict[str, None] = {}
    for e in events:
        if e.type == "message.created" and not e.data.get("author_id"):
            seen.setdefault(str(e.data.get("conversation_id")), None)
    for conv_id in seen:
        try:
            apply(hub, conv_id)
        except NotFound:
            continue


def evaluate(hub: Hub, conv_id: str, wait: bool = True) -> list[dict[str, Any]]:
    """The ``tag_when`` rules the lookups' answers meet on this conversation now:
    ``[{"lookup", "tag", "suggest_canned"}]`` (fetching, bounded, what is not cached)."""
    conv = store.get_conversation(hub, conv_id)
    tags = set(conv.tags)
    out = []
    for name, lookup in hub.config.hub.lookups.items():
        if not any(not r.tags_any or tags & set(r.tags_any) for r in lookup.tag_when):
            continue
        outcome = lookups.outcome_for(hub, conv, name, lookup, wait=wait)
        if outcome.get("state") != lookups.OK:
            continue
        try:
            rules = list(lookups.matching_rules(lookup, outcome.get("data"), tags))
        except (JMESPathError, TypeError, ValueError) as exc:  # (its message may quote
            # the answer: only the kind is logged)
            log.error("lookup %s: a tag_when rule failed on the answer (%s)", name,
                      type(exc).__name__)
            continue
        out += [{"lookup": name, "tag": r.tag or None, "suggest_canned": r.suggest_canned or None,
                 "rule": r, "value": jmespath.search(r.field, outcome.get("data")),
                 "inputs": (lookups.inputs_for(hub, conv, lookup)[0] if r.answer else {})}
                for r in rules]
    return out


def answer(hub: Hub, conv_id: str, language: str) -> str | None:
    """The first matching rule's ``answer`` in ``language`` (``vi``, ``en``, ``zh``; a tag such
    as ``zh-Hans`` is read as ``zh``; else Vietnamese, else any), filled in; None when no rule
    with an answer holds. Fetches what is not cached (bounded by timeout and breaker): call it
    off the request path, as the bot's reactor is."""
    lang = (language or "vi").split("-")[0]
    for hit in evaluate(hub, conv_id):
        texts = hit["rule"].answer
        text = texts.get(lang) or texts.get("vi") or next(iter(texts.values()), None)
        if text:
            values = {**hit["inputs"], "value": "" if hit["value"] is None else str(hit["value"])}
            return _PLACEHOLDER.sub(lambda m, v=values: v.get(m.group(1), ""), text)
    return None


def apply(hub: Hub, conv_id: str) -> list[str]:
    """Give the conversation the tags its lookups' answers call for; the tags added."""
    added = []
    for hit in evaluate(hub, conv_id):
        if hit["tag"] and add_tag(hub, conv_id, hit["tag"], hit["lookup"], hit["suggest_canned"]):
            added.append(hit["tag"])
    return added


def add_tag(hub: Hub, conv_id: str, tag: str, lookup: str, canned: str | None) -> bool:
    """Tag the conversation, with a system line and a feed event, unless it has the tag."""
    k, now = hub.keys, now_ms()
    tk, ck = k.conversation_tags(conv_id), k.conversation(conv_id)
    mid = timeline.next_id(hub)
    by = f"lookup:{lookup}"

    def change(pipe: redis.client.Pipeline) -> bool:
        if pipe.sismember(tk, tag):
            return False
        channel = pipe.hget(ck, "channel")
        if channel is None:
            raise NotFound(f"no conversation {conv_id}")
        text = f"lookup {lookup} tagged this conversation {tag}" + (
            f"; suggested reply {canned}" if canned else "")
        line = timeline.line(hub, conv_id, channel.decode(), by, text, now,
                             {"action": "tagged", "tag": tag, "lookup": lookup,
                              "canned": canned})
        pipe.multi()
        pipe.sadd(tk, tag)
        timeline.write(hub, pipe, conv_id, mid, line)
        feed.publish(hub, {"type": "conversation.tagged", "conversation_id": conv_id,
                           "tag": tag, "by": by, "canned": canned, "message_id": mid,
                           "ts": now}, pipe)
        return True

    return bool(hub.redis.transaction(change, tk, ck, value_from_callable=True))
