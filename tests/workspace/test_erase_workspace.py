"""Erasing a customer reaches what the workspace keeps about their conversations: the
integrators' delivery log (its bodies hold message text), the agent's load, snoozes."""

from __future__ import annotations

from tests.helpers import drain_all, post, tg_update
from tongdai.core.pipeline import feed, store
from tongdai.core.workspace import assignment, hookdelivery, hooks, privacy
from tongdai.core.workspace.access import Principal


def test_erase_forgets_webhook_bodies_and_the_agents_load(client, hub, people):
    sub, _ = hooks.create(hub, "http://127.0.0.1:9/hook", None, "crm", True, "admin")
    post(client, tg_update(1, 4242, 1, "Mình là Lan, số 0912 345 678"))
    post(client, tg_update(2, 5151, 1, "Khách khác"))
    drain_all(hub)
    feed.run_pending(hub, ["hooks"])
    conv = store.get_conversation(hub, "1")
    assignment.claim(hub, Principal("an", "agent", frozenset({"support"})), conv.id)
    assert assignment.load(hub, "an") == 1
    before, _ = hookdelivery.deliveries(hub, sub.id, None, 100)
    assert len(before) == 4  # created + message for each of the two customers

    out = privacy.erase_customer(hub, conv.customer_id, "admin")

    after, _ = hookdelivery.deliveries(hub, sub.id, None, 100)
    assert out["webhook_deliveries"] == 2 and len(after) == 2
    assert all(hub.redis.hget(hub.keys.hook_delivery(d["id"]), "conv") != b"1" for d in after)
    assert assignment.load(hub, "an") == 0
