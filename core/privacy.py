"""Answering a customer's data request: everything the hub holds about them, as JSON."""

from __future__ import annotations

from typing import Any

from core import outbound, store
from core.hub import Hub

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
        "channels": [c.to_api() for c in outbound.channel_states(hub, customer_id)],
        "conversations": conversations,
    }
