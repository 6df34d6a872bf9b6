"""Answering a customer's data request: everything the hub holds about them, as JSON."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from tongdai.core import clock
from tongdai.core.errors import BadRequest, NotFound
from tongdai.core.hub import Hub
from tongdai.core.pipeline import feed, outbound, store
from tongdai.core.workspace import backup, broadcast_optout, search_feed

PAGE = 200


def export_customer(hub: Hub, customer_id: str) -> dict[str, Any]:
    """The customer, their identities, identifiers, reachability, and every conversation with
    its full timeline — decrypted, as an agent would read them."""
    customer = store.get_customer(hub, customer_id)
    conversations = []
    for raw_id in hub.redis.zrange(hub.keys.customer_conversations(customer_id), 0, -1):
        cid = raw_id.decode()
        conv = store.get_conversation(hub, cid)
        messages, cursor = [], None
        while True:
            page = store.message_page(hub, cid, cursor, PAGE)
            messages += [m.to_api() for m in page.items]
            cursor = page.next_cursor
            if not cursor:
                break
        conversations.append({**conv.to_api(), "messages": list(reversed(messages))})
    return {
        "customer": customer.to_api(),
        # their answer "stop" to a broadcast (core/workspace/broadcast_optout.py)
        "opted_out": broadcast_optout.opted_out(hub, customer_id),
        "channels": [c.to_api() for c in outbound.channel_states(hub, customer_id)],
        "conversations": conversations,
    }


def erase_customer(hub: Hub, customer_id: str, actor: str) -> dict[str, Any]:
    """Erase a customer: everything personal goes, anonymous counts stay.

    Crypto-erasure: their identities' own keys (``core/subjects.py``) are destroyed, so every
    copy of what was encrypted with them that does not hold the keys too is unreadable. A
    backup taken before holds them (and, with ``encrypt_message_text`` off, the texts in
    clear): the erasure is recorded, and ``tongdai restore`` erases the customer again. The
    rest is deleted as well:

    Deleted: name, picture, identities (the channel index forgets them: their next message
    starts a new customer), identifiers and who held them, merge suggestions, conversations
    with their messages and files, and the retained raw events of their identities. Merge
    records keep only ids; the search index drops their rows. What is left on the customer is
    ``erased`` (when, by whom) and the counts. Redis's append-only file is rewritten so the old
    values leave the disk too.
    """

    r, k = hub.redis, hub.keys
    h = {a.decode(): b.decode() for a, b in r.hgetall(k.customer(customer_id)).items()}
    if not h:
        raise NotFound(f"no customer {customer_id}")
    if "erased" in h:
        return {"customer_id": customer_id, "erased": int(h["erased"]), "already": True}
    if h.get("merged_into"):
        raise BadRequest(f"customer {customer_id} is merged into {h['merged_into']}: erase "
                         "that one (or split them first)")
    identities = [i.decode() for i in r.hkeys(k.customer_identities(customer_id))]
    # customers merged into this one: their hashes still hold a name; their merges end here
    merged_in = []
    for mid in r.zrange(k.customer_merges(customer_id), 0, -1):
        rec = r.hmget(k.merge(mid.decode()), ["target", "source", "status"])
        if rec[0] and rec[0].decode() == customer_id and rec[2] == b"merged":
            merged_in.append((mid.decode(), rec[1].decode()))
    convs = [c.decode() for c in r.zrange(k.customer_conversations(customer_id), 0, -1)]
    messages = files = 0
    pipe = r.pipeline(transaction=False)
    for conv in convs:
        ch = r.hgetall(k.conversation(conv))
        for blob in r.hvals(k.messages(conv)):
            messages += 1
            for a in orjson.loads(blob).get("at", ()):
                if str(a.get("file_id", "")).startswith("blob:"):
                    files += hub.blobs.delete(a["file_id"])
        queue = ch.get(b"queue", b"").decode()
        if queue:
            pipe.zrem(k.queue(queue), conv)
        for status in ("open", "pending", "resolved"):
            pipe.zrem(k.conversations_by_status(status), conv)
        pipe.zrem(k.unread(), conv)
        pipe.zrem(k.sla_due(), conv)
        pipe.zrem(k.sla_warn(), conv)
        pipe.zrem(k.sla_resolve(), conv)
        pipe.zrem(k.snoozes(), conv)
        if ch.get(b"assignee"):  # no longer part of anyone's load
            pipe.srem(k.user_load(ch[b"assignee"].decode()), conv)
        for chat, thread in r.hgetall(k.staff_topics(conv)).items():  # staff-group topic
            pipe.delete(k.staff_topic(chat.decode(), thread.decode()))
        pipe.delete(k.staff_topics(conv))
        pipe.delete(k.conversation(conv), k.conversation_tags(conv), k.timeline(conv),
                    k.messages(conv), k.conversation_attributes(conv),
                    k.conversation_labels(conv), k.survey("conv", conv))  # CSAT: counts stay
    for ident in identities:
        channel, _, user = ident.partition("|")
        pipe.hdel(k.identity_index(channel), user)
        pipe.hdel(k.survey("waiting"), ident)  # a survey waiting on their answer
    for field in r.hkeys(k.customer_identifiers(customer_id)):
        kind, _, index = field.decode().partition(":")
        pipe.hdel(k.identifier_holders(kind, index), customer_id)
    for other in r.smembers(k.customer_suggestions(customer_id)):
        o = other.decode()
        pair = f"{min(o, customer_id, key=int)}:{max(o, customer_id, key=int)}"
        pipe.delete(k.suggestion(pair))
        pipe.zrem(k.suggestions(), pair)
        pipe.srem(k.customer_suggestions(o), customer_id)
    for mid in r.zrange(k.customer_merges(customer_id), 0, -1):
        pipe.hset(k.merge(mid.decode()), mapping={"identities": "", "identifiers": "",
                                                  "why": "(erased)"})
    for mid, source in merged_in:  # nothing left to split them back into
        pipe.hset(k.merge(mid), "status", "erased")
        pipe.delete(k.customer(source))
        pipe.hset(k.customer(source), mapping={"erased": clock.now_ms(), "erased_by": actor})
    pipe.delete(k.customer(customer_id), k.customer_identities(customer_id),
                k.customer_identifiers(customer_id), k.customer_last_inbound(customer_id),
                k.customer_conversations(customer_id), k.customer_suggestions(customer_id))
    now = clock.now_ms()
    counts = {"conversations": len(convs), "messages": messages, "files": files,
              "identities": len(identities)}
    pipe.hset(k.customer(customer_id), mapping={"erased": now, "erased_by": actor,
                                                "created": h.get("created", 0),
                                                **{f"count:{n}": v for n, v in counts.items()}})
    pipe.hincrby(k.stats(), "erased:customers", 1)
    pipe.hincrby(k.stats(), "erased:messages", messages)
    # every node's search index drops their rows (core/workspace/search_feed.py); this one now
    gone = [customer_id] + [source for _, source in merged_in]
    feed.publish(hub, {"type": "customer.erased", "customer_id": customer_id,
                       "customer_ids": gone, "conversation_ids": convs}, pipe)
    pipe.execute()
    search_feed.forget(gone, convs)
    from tongdai.core.workspace import hookdelivery

    counts["webhook_deliveries"] = hookdelivery.forget_conversations(hub, set(convs))
    # every copy without these keys is unreadable from now on; older backups hold them, so
    # the erasure is recorded for restores (core/workspace/backup.py)
    keys = hub.subjects.erase(identities, customer_id)
    backup.note_erasure(hub, customer_id)
    raw_events = _erase_raw_events(hub, set(identities))
    try:
        r.bgrewriteaof()  # the AOF still holds the old values until it is rewritten
    except redis.ResponseError:
        pass  # a rewrite is already running, or persistence is off
    return {"customer_id": customer_id, "erased": now, **counts, "raw_events": raw_events,
            "keys_destroyed": keys}


def _erase_raw_events(hub: Hub, identities: set[str]) -> int:
    """Delete the retained raw events whose sender is one of these identities."""
    from tongdai.core.pipeline import rawlog, store

    removed = 0
    for batch in rawlog.since(hub, 0):
        for raw in batch.events:
            adapter = hub.adapters.get(raw.channel_id)
            if adapter is None:
                continue
            try:
                events = adapter.parse(raw)
            except Exception:  # noqa: BLE001, S112 — unparseable: not provably theirs
                continue
            for ev in events:
                ch = hub.channel_for(raw.channel_id, ev.account_id) or raw.channel_id
                user, _ = store.identity_of(hub, ch, ev.external_user_id, None)
                if f"{ch}|{user}" in identities:
                    removed += hub.redis.xdel(hub.keys.raw(batch.shard), raw.id)
                    break
    return removed
