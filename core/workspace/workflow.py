"""Working a conversation besides replying: notes with @mentions, priority, status, snooze.

- A **note** is a timeline line with direction ``internal`` and kind ``note``. It gets no send
  job and no address, and ``outbound.deliver`` refuses anything that is not outbound, so it
  cannot reach the customer. Its feed event is ``note.created``, not ``message.created``
  (reactors read that as the conversation with the customer: response times, integrators).
- **Raise priority** raises it to at least ``routing.escalation_priority``, re-scores the
  conversation in its queue and writes a system line into the timeline (moving it up a tier
  is ``core/workspace/tiers.py``). **Resolve** and **reopen** write their line too.
- **Snooze** sets the conversation *pending* until a time and takes it out of its queue; the
  ``snooze`` tick wakes it then, and a customer message wakes it at once (core/lua/ingest.lua).
  A snooze is a reminder, not an answer: the assignee keeps it (it counts in their load), its
  unread count stays, and a running SLA wait keeps running (only an agent's reply or resolving
  ends one), so a breach while snoozed is reported.

Every change lands in one MULTI (or one script) with its feed event; conversations the caller
may not see answer 404 (core/access.py).
"""

from __future__ import annotations

import hashlib
import re

import orjson
import redis

from tongdai.core.clock import now_ms
from tongdai.core.errors import BadRequest, Conflict, NotFound
from tongdai.core.hub import Hub
from tongdai.core.models import AuthorKind, Conversation, ConversationStatus, Message
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import access, audit, timeline, users
from tongdai.core.workspace.access import Principal

NOTE_KIND = "note"
IDEMPOTENCY_TTL_S = 86400
MENTIONS_KEPT = 500  # per user, newest
MAX_TEXT = 20_000
MAX_SNOOZE_MS = 366 * 86400 * 1000
WAKE_BATCH = 500
# "@an", "@bich.le": user names (core/users.py), not inside a word or a mail address.
_MENTION = re.compile(r"(?<![\w@.])@([a-z0-9][a-z0-9_.-]{0,62})", re.IGNORECASE)


def queue_score(priority: int, created_ts_ms: int) -> float:
    """A conversation's place in its queue: priority first, then age (as ingest.lua files it)."""
    return (100 - priority) * 1e13 + created_ts_ms


# -- notes and mentions -----------------------------------------------------------------------
def mentioned(hub: Hub, conv: Conversation, text: str, author: str) -> list[str]:
    """Users named as ``@name`` who exist, are enabled and may see the conversation (others,
    and the author, are ignored), in order of first mention."""
    out: list[str] = []
    for m in _MENTION.finditer(text):
        raw = m.group(1).lower()
        for name in dict.fromkeys((raw, raw.rstrip("._-"))):  # "@an." at a sentence's end
            if not name or name in out or name == author:
                continue
            user = users.find(hub, name)
            if user is None or user.disabled:
                continue
            if access.can_see(hub, Principal(user.name, user.role, frozenset(user.teams)), conv):
                out.append(name)
            break
    return out


def not_mentioned(hub: Hub, conv: Conversation, text: str, author: str) -> list[dict[str, str]]:
    """The ``@name``s of ``text`` that mention nobody, each with why: ``cannot_see`` (a user
    outside the conversation's teams), ``disabled``, or ``unknown`` (no such user; an e-mail
    address's "@" is not a mention)."""
    out: dict[str, str] = {}
    for m in _MENTION.finditer(text):
        raw = m.group(1).lower()
        names = list(dict.fromkeys((raw, raw.rstrip("._-"))))
        found = next((u for u in (users.find(hub, n) for n in names) if u), None)
        if found is None:
            out.setdefault(names[-1], "unknown")
        elif found.name == author:
            continue
        elif found.disabled:
            out.setdefault(found.name, "disabled")
        elif not access.can_see(hub, Principal(found.name, found.role, frozenset(found.teams)),
                                conv):
            out.setdefault(found.name, "cannot_see")
    return [{"name": n, "why": why} for n, why in out.items() if n]


def mentionable(hub: Hub, principal: Principal, conv_id: str) -> list[dict[str, str]]:
    """The colleagues a note on this conversation can mention: enabled users who may see it
    (not the caller), by name."""
    conv = access.conversation(hub, principal, conv_id)
    return [{"name": u.name, "display_name": u.display_name or u.name}
            for u in sorted(users.all_users(hub), key=lambda u: u.name)
            if u.name != principal.name and not u.disabled
            and access.can_see(hub, Principal(u.name, u.role, frozenset(u.teams)), conv)]


def add_note(hub: Hub, principal: Principal, conv_id: str, text: str,
             idempotency_key: str) -> tuple[Message, bool]:
    """A private note on the timeline, once per (author, conversation, idempotency key).
    Returns (note, created). Mentioned users get it in their mentions list."""
    conv = access.conversation(hub, principal, conv_id)
    text = (text or "").strip()
    if not text:
        raise BadRequest("a note needs text")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"a note is at most {MAX_TEXT} characters")
    now = now_ms()
    names = mentioned(hub, conv, text, principal.name)
    msg = timeline.internal(hub, conv.id, conv.channel_id, NOTE_KIND, AuthorKind.AGENT,
                            principal.name, text, now)
    event = orjson.dumps({"type": "note.created", "conversation_id": conv_id,
                          "author_id": principal.name, "mentions": names, "ts": now})
    k = hub.keys
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    code, mid = hub.scripts.create_note(
        keys=[k.idempotency(f"note:{principal.name}:{conv_id}", digest), k.messages(conv_id),
              k.timeline(conv_id), k.conversation(conv_id), *[k.mentions(n) for n in names]],
        args=[msg.to_blob(), now, now, IDEMPOTENCY_TTL_S, k.seq("message"),
              event[1:].decode(), conv_id, MENTIONS_KEPT])
    if int(code) == 2:
        raise NotFound(f"no conversation {conv_id}")
    mid = mid.decode()
    created = int(code) == 1
    if created:
        audit.record(hub, principal.name, "note.created", conv_id,
                     {"message_id": mid, "mentions": names})
    return store.get_message(hub, conv_id, mid), created


def mentions(hub: Hub, principal: Principal, cursor: str | None, limit: int) -> store.Page:
    """The caller's mentions, newest first: notes naming them in conversations they may still
    see (a page can hold fewer than ``limit``: the others are skipped, the cursor moves on)."""
    rows, nxt = store._zpage(hub, hub.keys.mentions(principal.name), cursor, limit, desc=True)
    items = []
    for member, score in rows:
        conv_id, _, mid = member.partition(":")
        try:
            conv = store.get_conversation(hub, conv_id)
            if not access.can_see(hub, principal, conv):
                continue
            note = store.get_message(hub, conv_id, mid)
        except NotFound:  # erased since
            continue
        items.append({"conversation_id": conv_id, "message_id": mid,
                      "author_id": note.author_id, "text": note.text, "ts": int(score)})
    return store.Page(items, nxt)


# -- raise priority, resolve, reopen ----------------------------------------------------------
def raise_priority(hub: Hub, principal: Principal, conv_id: str, why: str = "") -> Conversation:
    """Raise the priority to at least ``routing.escalation_priority`` (the front of its queue),
    and say so in the timeline. Moving it up a tier is ``tiers.escalate``."""
    conv = access.conversation(hub, principal, conv_id)
    if conv.status == ConversationStatus.RESOLVED:
        raise Conflict(f"conversation {conv_id} is resolved: reopen it first").because(
            "reopen_first", id=conv_id)
    why = (why or "").strip()
    level = hub.config.hub.routing.escalation_priority
    k, now = hub.keys, now_ms()
    mid = timeline.next_id(hub)
    ck = k.conversation(conv_id)

    def change(pipe: redis.client.Pipeline) -> None:
        prio, created, queue = pipe.hmget(ck, ["priority", "created", "queue"])
        if created is None:
            raise NotFound(f"no conversation {conv_id}")
        before = int(prio or 0)
        after = max(before, level)
        line = timeline.line(hub, conv_id, conv.channel_id, principal.name,
                             f"{principal.name} raised the priority to {after}"
                             + (f" — {why}" if why else ""), now,
                             {"action": "priority_raised", "priority": [before, after]})
        pipe.multi()
        pipe.hset(ck, mapping={"priority": after, "updated": now})
        if after > before:  # the agent's words stay in the sealed timeline line only
            pipe.hset(ck, "priority_why", f"raised by {principal.name}")
        # only where it is queued now (not while snoozed or resolved)
        pipe.zadd(k.queue(queue.decode()), {conv_id: queue_score(after, int(created))}, xx=True)
        timeline.write(hub, pipe, conv_id, mid, line)
        feed.publish(hub, {"type": "conversation.priority_changed", "conversation_id": conv_id,
                           "priority": after, "why": f"raised by {principal.name}",
                           "by": principal.name, "message_id": mid, "ts": now}, pipe)
        # the reason is in the (sealed) timeline line, not the audit log: it may name the
        # customer's details
        audit.record(hub, principal.name, "conversation.priority_raised", conv_id,
                     {"priority": [before, after], "message_id": mid}, pipe)

    hub.redis.transaction(change, ck)
    return store.get_conversation(hub, conv_id)


def set_status(hub: Hub, principal: Principal, conv_id: str, status: ConversationStatus,
               via: str = "") -> Conversation:
    """Resolve or reopen, with the timeline line and the audit entry (``via``: telegram...)."""
    conv = access.conversation(hub, principal, conv_id)
    verb = "resolved" if status == ConversationStatus.RESOLVED else "reopened"
    line = timeline.line(hub, conv_id, conv.channel_id, principal.name,
                         f"{principal.name} {verb} the conversation", now_ms(),
                         {"action": verb})
    after = store.set_status(hub, conv_id, status, line)
    if conv.status != status:
        audit.record(hub, principal.name, f"conversation.{status.value}", conv_id,
                     {"via": via} if via else None)
    return after


# -- snooze -----------------------------------------------------------------------------------
def snooze(hub: Hub, principal: Principal, conv_id: str, until_ts_ms: int,
           now: int | None = None) -> Conversation:
    """Set the conversation pending until ``until_ts_ms``: out of its queue until then (the
    ``snooze`` tick) or until the customer writes (ingest)."""
    access.conversation(hub, principal, conv_id)
    now = now or now_ms()
    if until_ts_ms <= now:
        raise BadRequest("until_ts must be in the future (milliseconds since the epoch)")
    if until_ts_ms - now > MAX_SNOOZE_MS:
        raise BadRequest("a snooze lasts at most a year")
    k = hub.keys
    ck = k.conversation(conv_id)

    def change(pipe: redis.client.Pipeline) -> None:
        status, queue = pipe.hmget(ck, ["status", "queue"])
        if status is None:
            raise NotFound(f"no conversation {conv_id}")
        if status.decode() == ConversationStatus.RESOLVED.value:
            raise Conflict(f"conversation {conv_id} is resolved: reopen it first").because(
                "reopen_first", id=conv_id)
        pipe.multi()
        pipe.hset(ck, mapping={"status": ConversationStatus.PENDING.value,
                               "snoozed_until": until_ts_ms, "updated": now})
        pipe.zrem(k.queue(queue.decode()), conv_id)
        pipe.zrem(k.conversations_by_status(ConversationStatus.OPEN.value), conv_id)
        pipe.zadd(k.conversations_by_status(ConversationStatus.PENDING.value), {conv_id: now})
        pipe.zadd(k.snoozes(), {conv_id: until_ts_ms})
        feed.publish(hub, {"type": "conversation.snoozed", "conversation_id": conv_id,
                           "by": principal.name, "until_ts": until_ts_ms, "ts": now}, pipe)
        audit.record(hub, principal.name, "conversation.snoozed", conv_id,
                     {"until_ts": until_ts_ms}, pipe)

    hub.redis.transaction(change, ck)
    return store.get_conversation(hub, conv_id)


def _wake(hub: Hub, conv_id: str, now: int) -> bool:
    """Open one snoozed conversation whose time has come; drop a snooze entry that no longer
    holds (the customer woke it, an agent resolved or reopened it, it was erased)."""
    k = hub.keys
    ck = k.conversation(conv_id)
    woke = False

    def change(pipe: redis.client.Pipeline) -> None:
        nonlocal woke
        status, until, queue, prio, created = pipe.hmget(
            ck, ["status", "snoozed_until", "queue", "priority", "created"])
        due = (status == ConversationStatus.PENDING.value.encode() and until is not None
               and int(until) <= now)
        pipe.multi()
        if status == ConversationStatus.PENDING.value.encode() and until is not None and not due:
            pipe.zadd(k.snoozes(), {conv_id: int(until)})  # snoozed again, for later
            return
        pipe.zrem(k.snoozes(), conv_id)
        if not due:
            return
        pipe.hset(ck, mapping={"status": ConversationStatus.OPEN.value, "updated": now})
        pipe.hdel(ck, "snoozed_until")
        pipe.zrem(k.conversations_by_status(ConversationStatus.PENDING.value), conv_id)
        pipe.zadd(k.conversations_by_status(ConversationStatus.OPEN.value), {conv_id: now})
        pipe.zadd(k.queue(queue.decode()), {conv_id: queue_score(int(prio or 0), int(created))})
        feed.publish(hub, {"type": "conversation.open", "conversation_id": conv_id,
                           "reason": "snooze ended", "ts": now}, pipe)
        audit.record(hub, "system", "conversation.woken", conv_id, {"reason": "snooze"}, pipe)
        woke = True

    hub.redis.transaction(change, ck)
    return woke


@feed.tick("snooze", 5)
def wake_snoozed(hub: Hub, now: int | None = None) -> int:
    """Wake every conversation whose snooze has ended (idempotent: several schedulers may
    run it). Returns how many woke."""
    now = now or now_ms()
    woken = 0
    while True:
        due = hub.redis.zrangebyscore(hub.keys.snoozes(), "-inf", now, start=0, num=WAKE_BATCH)
        for cid in due:
            woken += _wake(hub, cid.decode(), now)
        if len(due) < WAKE_BATCH:
            return woken
