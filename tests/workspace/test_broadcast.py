"""Proactive broadcasts (#15): a segment, a dry run with skip reasons, a send killed halfway and
resumed (nobody twice, counted by the fake Bot API), replies landing in the conversation, and
"hủy" opting a customer out of every later broadcast."""

from __future__ import annotations

import time

import pytest

from tests.conftest import write_config
from tests.helpers import auth, drain_all, fb_and_zalo_channels, post, run_outbound, tg_update
from tests.test_channels_e2e import fb_msg, fb_post
from tongdai.core.pipeline import feed
from tongdai.core.workspace import broadcast as bc
from tongdai.core.workspace import broadcast_send as bs
from tongdai.core.workspace.access import Principal

ADMIN = Principal("lead", "admin")
NAMES = ["An", "Bình", "Chi", "Dũng", "Hoa", "Khoa"]


@pytest.fixture
def config_file(tmp_path, tg_fake, graph, zalo):
    return write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url,
                        extra=fb_and_zalo_channels(graph, zalo))


@pytest.fixture
def world(client, hub):
    """Six Telegram customers who wrote about a failed top-up just now, one who wrote about
    something else, and a Messenger customer who wrote about it two days ago (window closed)."""
    now = int(time.time())
    for i, name in enumerate(NAMES):
        post(client, tg_update(100 + i, 5000 + i, 1, "nạp thẻ lỗi rồi shop ơi", date=now,
                               first_name=name))
    post(client, tg_update(200, 6000, 1, "giờ mở cửa mấy giờ?", date=now, first_name="Xuân"))
    fb_post(client, [fb_msg("m_old", "nạp thẻ không được", (now - 48 * 3600) * 1000)])
    drain_all(hub)
    return now


def customer_of_chat(hub, chat: int) -> str:
    return hub.redis.hget(hub.keys.identity_index("tg-test"), str(chat)).decode()


def test_dry_run_kill_resume_report_and_opt_out(hub, client, world, tg_fake, admin_token,
                                                 monkeypatch):
    b = bc.create(hub, ADMIN, "Lỗi nạp thẻ", {"tag": "payment", "since": (world - 3600) * 1000},
                  {"*": "Chào {{customer.first_name}}, lỗi nạp thẻ đã được khắc phục.",
                   "en": "Hi {{customer.first_name}}, top-ups work again."})
    # the dry run: six on Telegram, the Messenger customer skipped (24 h window), the customer
    # who asked about opening hours not in the segment
    dry = bc.dry_run(hub, ADMIN, b)
    assert dry["totals"] == {"customers": 7, "would_send": 6, "would_skip": 1}
    assert dry["channels"]["tg-test"] == {"would_send": 6, "would_skip": {}}
    assert dry["channels"]["fb-test"] == {"would_send": 0, "would_skip": {"window_closed": 1}}
    (sample,) = dry["samples"].values()  # the given name, filled in
    assert sample in {f"Chào {n}, lỗi nạp thẻ đã được khắc phục." for n in NAMES}
    assert tg_fake.sent("sendMessage") == []  # a dry run sends nothing
    # planned a chunk of customers per round trip: chunks of 3 change nothing
    monkeypatch.setattr(bc, "PLAN_CHUNK", 3)
    assert bc.dry_run(hub, ADMIN, b)["channels"] == dry["channels"]

    # killed after the third message was made but before it was recorded
    real, made = bs._record, []

    def dying(hub_, bid, customer, state):
        if state["s"] == "queued":
            made.append(customer)
            if len(made) == 3:
                raise RuntimeError("the sender was killed")
        real(hub_, bid, customer, state)

    monkeypatch.setattr(bs, "_record", dying)
    with pytest.raises(RuntimeError):
        bs.send(hub, b.id)
    assert bc.get(hub, ADMIN, b.id).state == "stopped"
    before = bs.progress(hub, b.id)
    assert before["queued"] == 2 and before["pending"] == 1  # the third is not recorded
    monkeypatch.setattr(bs, "_record", real)
    run_outbound(hub)  # the senders deliver what was queued before the crash
    assert len(tg_fake.sent("sendMessage")) == 3

    seen = []
    result = bs.send(hub, b.id, lambda done, total: seen.append((done, total)))
    assert result["state"] == "done" and seen[0] == (before["handled"], 7) and seen[-1] == (7, 7)
    run_outbound(hub)
    sent = tg_fake.sent("sendMessage")
    chats = sorted(int(m["chat_id"]) for m in sent)
    assert chats == [5000, 5001, 5002, 5003, 5004, 5005]  # each exactly once
    assert {m["text"] for m in sent} >= {"Chào An, lỗi nạp thẻ đã được khắc phục.",
                                         "Chào Dũng, lỗi nạp thẻ đã được khắc phục."}
    assert bs.send(hub, b.id)["sent_now"] == 0  # done: sending again sends nothing

    rep = bs.report(hub, b.id)
    assert rep["totals"] == {"sent": 6, "queued": 0, "failed": 0, "uncertain": 0, "skipped": 1}
    assert rep["reasons"]["skipped"] == {"window_closed": 1}
    assert rep["not_reached"][0]["channel"] == "fb-test"

    # the broadcast is a message of the customer's conversation; their answer lands there too
    an = customer_of_chat(hub, 5000)
    conv = hub.redis.hget(hub.keys.customer(an), "conv").decode()
    post(client, tg_update(300, 5000, 2, "Hủy", date=int(time.time()) + 1, first_name="An"))
    drain_all(hub)
    feed.run_pending(hub, ["broadcast-optout"])
    msgs = client.get(f"/api/v1/conversations/{conv}/messages",
                      headers=auth(admin_token)).json["items"]
    texts = [m["text"] for m in reversed(msgs)]
    assert texts[:2] == ["nạp thẻ lỗi rồi shop ơi", "Chào An, lỗi nạp thẻ đã được khắc phục."]
    assert "Hủy" in texts[2:]
    run_outbound(hub)
    assert tg_fake.sent("sendMessage")[-1]["text"].startswith("Bạn đã hủy nhận tin")
    cust = client.get(f"/api/v1/customers/{an}", headers=auth(admin_token)).json
    assert cust["opted_out"]["channel"] == "tg-test" and cust["opted_out"]["word"] == "Hủy"
    from tongdai.core.workspace.privacy import export_customer

    assert export_customer(hub, an)["opted_out"]["word"] == "Hủy"  # in a data request too

    # "huy" from someone who never got a broadcast is not an opt-out (may mean: cancel order)
    post(client, tg_update(301, 6000, 2, "huy", date=int(time.time()), first_name="Xuân"))
    drain_all(hub)
    feed.run_pending(hub, ["broadcast-optout"])
    assert hub.redis.hget(hub.keys.customer(customer_of_chat(hub, 6000)), "optout") is None

    # every later broadcast skips the opted-out customer, also once merged with another
    again = bc.create(hub, ADMIN, "Khuyến mãi", {"tag": "payment"}, {"*": "Ưu đãi 10%"})
    dry2 = bc.dry_run(hub, ADMIN, again)
    assert dry2["channels"]["tg-test"] == {"would_send": 5, "would_skip": {"opted_out": 1}}
    from tongdai.core.identity import graph

    graph.merge(hub, customer_of_chat(hub, 5001), an, "lead", "one person, two accounts")
    assert hub.redis.hget(hub.keys.customer(customer_of_chat(hub, 5001)), "optout")


def test_segment_by_conversations_and_refusals(hub, world):
    convs = [hub.redis.hget(hub.keys.customer(customer_of_chat(hub, c)), "conv").decode()
             for c in (5000, 6000)]
    b = bc.create(hub, ADMIN, "", {"conversations": [f"#{convs[0]}", convs[1], "999"]},
                  {"vi": "Xin chào {{customer.name}}"})
    assert {c for c, _ in bc.recipients(hub, ADMIN, b.segment)} == {
        customer_of_chat(hub, 5000), customer_of_chat(hub, 6000)}
    with pytest.raises(Exception, match="unknown variable"):
        bc.create(hub, ADMIN, "", {"tag": "payment"}, {"*": "Chào {{custmer.name}}"})
    with pytest.raises(Exception, match="a broadcast to everyone is not offered"):
        bc.create(hub, ADMIN, "", {}, {"*": "x"})
    with pytest.raises(Exception, match="supervisor"):
        bc.create(hub, Principal("an", "agent", frozenset({"support"})), "", {"tag": "x"},
                  {"*": "x"})


def test_the_cli_creates_dry_runs_sends_with_progress_and_reports(hub, world, tg_fake):
    from click.testing import CliRunner

    from tongdai.core.cli import main

    run = CliRunner().invoke
    made = run(main, ["broadcast", "create", "--name", "Lỗi nạp thẻ", "--tag", "payment",
                      "--since", "1h", "--channel", "tg-test",
                      "--text", "Chào {{customer.first_name}}, đã khắc phục."])
    assert made.exit_code == 0, made.output
    bid = made.output.strip()
    dry = run(main, ["broadcast", "dry-run", bid])
    assert "6 customers: 6 would get it, 0 would be skipped" in dry.output
    assert tg_fake.sent("sendMessage") == []
    sent = run(main, ["broadcast", "send", bid])
    assert sent.exit_code == 0 and "6 messages queued in this run" in sent.output
    assert f"broadcast {bid}" in sent.output  # the progress bar's label
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 6
    assert "done, 6/6 handled" in run(main, ["broadcast", "status", bid]).output
    assert run(main, ["broadcast", "report", bid]).output.startswith("sent 6, queued 0")
    bad = run(main, ["broadcast", "create", "--tag", "payment", "--text", "{{agent.name}}"])
    assert bad.exit_code == 1 and "unknown variable {{agent.name}}" in bad.output


def test_the_scheduler_sends_it_paced_by_the_channel(hub, world, tg_fake):
    """Started from the API or console, the scheduler's tick makes the messages, never
    faster than the channel sends: while Telegram's slots are reserved seconds ahead (a busy
    channel), it makes none, so an agent's reply there does not queue behind the broadcast."""
    from tongdai.core.clock import now_ms

    b = bc.create(hub, ADMIN, "", {"tag": "payment", "channels": ["tg-test"]}, {"*": "Xin chào"})
    bs.start(hub, b.id)
    hub.redis.set(hub.keys.rate("tg-test"), now_ms() + 10_000, px=10_000)  # busy for 10 s
    assert bs.tick(hub) == 0
    assert bc.get(hub, ADMIN, b.id).state == "sending"
    hub.redis.delete(hub.keys.rate("tg-test"))  # the channel has room again
    assert bs.tick(hub) == 6
    assert bc.get(hub, ADMIN, b.id).state == "done"
    run_outbound(hub)
    assert len(tg_fake.sent("sendMessage")) == 6
