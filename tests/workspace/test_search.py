"""Search over all history (the SQLite FTS5 index, core/workspace/search_index.py): every
message however old, accent-free Vietnamese, Chinese in either script, phones and order
numbers in any format, filters and access, erasure, rebuilding.

Messages come through the real webhook and ingest; the index is fed by its reactor on the
change feed (``feed.run_pending``), as ``tongdai reactor`` would; asserts go through /api/v1.
Texts are encrypted at rest here (``security.encrypt_message_text``): the index is what
makes them searchable.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import write_config
from tests.helpers import auth, drain_all
from tests.workspace.conftest import TEAMS
from tests.workspace.test_inbox import NOW_S, conv_of, get_inbox, ids, say, share_contact
from tongdai.core.pipeline import feed
from tongdai.core.workspace import search_feed, search_index


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml",
                        extra=TEAMS + "security: {encrypt_message_text: true}\n")


def index_now(hub) -> None:
    drain_all(hub)
    feed.run_pending(hub, ["search"])


def test_every_message_in_any_script_and_format(client, hub, people):
    say(client, 801, "Cho mình hỏi nạp thẻ bị lỗi, đơn #DH-20931 ạ", name="Phạm Thu Hà")
    for n in range(12):  # the first message is no longer among the latest ten
        say(client, 801, f"tin nhắn {n}", name="Phạm Thu Hà")
    say(client, 802, "無法登入帳號，請協助", name="陳大文")        # Traditional
    say(client, 803, "退款什么时候到账", name="王小明")            # Simplified
    say(client, 804, "gọi lại cho em số 0912 345 678 nhé", name="Lê Văn Tám")
    say(client, 805, "alo", name="Ngô Bảo Châu")
    share_contact(client, 805, "+84987654321", name="Ngô Bảo Châu")
    index_now(hub)
    c1, c2, c3, c4, c5 = (conv_of(hub, u) for u in (801, 802, 803, 804, 805))
    assert b"n\xe1\xba\xa1p" not in b"".join(hub.redis.hvals(hub.keys.messages(c1)))  # sealed
    admin = people["admin"]
    found = {q: ids(get_inbox(client, admin, q=q)) for q in (
        "nap the", "NẠP THẺ", "DH20931", "dh-20931", "20931",
        "登录", "帐号", "登入", "無法", "退款", "退款什麼時候", "到賬",
        "0912345678", "+84912345678", "84-912-345-678", "0912 345 678",
        "pham thu ha", "小明", "大文", "0987 654 321", "987654321", "ngo bao",
        "khong co gi", "DH20932")}
    assert found == {
        "nap the": {c1}, "NẠP THẺ": {c1}, "DH20931": {c1}, "dh-20931": {c1}, "20931": {c1},
        "登录": {c2}, "帐号": {c2}, "登入": {c2}, "無法": {c2}, "退款": {c3},
        "退款什麼時候": {c3}, "到賬": {c3},
        "0912345678": {c4}, "+84912345678": {c4}, "84-912-345-678": {c4}, "0912 345 678": {c4},
        "pham thu ha": {c1}, "小明": {c3}, "大文": {c2}, "0987 654 321": {c5},
        "987654321": {c5}, "ngo bao": {c5}, "khong co gi": set(), "DH20932": set()}
    page = get_inbox(client, admin, q="nap the")
    assert page["items"][0]["customer_name"] == "Phạm Thu Hà"


def test_filters_and_access(client, hub, people):
    say(client, 811, "nạp thẻ lỗi từ tuần trước", name="Mai", date=NOW_S - 7 * 86_400)
    # (811 and 812 are tagged payment: the billing queue)
    say(client, 812, "nap the khong duoc", name="Lan")
    say(client, 813, "hỏi về nạp thé giúp em", name="Hoa")     # (a typo: not tagged)
    index_now(hub)
    old, c2, c3 = (conv_of(hub, u) for u in (811, 812, 813))
    admin, bich, an = people["admin"], people["bich"], people["an"]
    assert ids(get_inbox(client, admin, q="nap the")) == {old, c2, c3}
    # the matching message's time
    day = NOW_S * 1000 - 86_400_000
    assert ids(get_inbox(client, admin, q="nap the", since=day)) == {c2, c3}
    assert ids(get_inbox(client, admin, q="nap the", until=day)) == {old}
    billing, general = {old, c2}, {c3}
    assert ids(get_inbox(client, admin, q="nap the", queue="billing")) == billing
    assert ids(get_inbox(client, admin, q="nap the", tag="payment")) == billing
    assert ids(get_inbox(client, admin, q="nap the", channel="tg-test")) == {old, c2, c3}
    assert ids(get_inbox(client, admin, q="nap the", channel="zalo-test")) == set()
    # an agent finds only what their teams see (nothing of the others, not even by id)
    assert ids(get_inbox(client, bich, q="nap the")) == billing
    assert ids(get_inbox(client, an, q="nap the")) == general
    assert ids(get_inbox(client, bich, q=f"#{next(iter(general))}")) == set()
    assert client.post(f"/api/v1/conversations/{c3}/resolve",
                       headers=auth(admin)).status_code == 200
    assert c3 not in ids(get_inbox(client, admin, q="nap the"))
    assert ids(get_inbox(client, admin, q="nap the", status="resolved")) == {c3}
    # pages: every match once, newest first, over the message hits
    seen, cursor = [], None
    while True:
        page = get_inbox(client, admin, q="nap the", limit=1,
                         **({"cursor": cursor} if cursor else {}))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [c2, old]


def test_erasure_takes_them_out_of_every_index(client, hub, people, tmp_path, monkeypatch):
    say(client, 821, "mã bí mật zyxwvu của tôi", name="Đỗ Quyên")
    say(client, 822, "zyxwvu cũng là từ của tôi", name="Khác")
    index_now(hub)
    c1, c2 = conv_of(hub, 821), conv_of(hub, 822)
    here = search_index.path()
    # a second node's index, built from Redis before the erasure
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "node2"))
    assert search_feed.reindex(hub)["messages"] == 2
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(here.parent))
    admin = people["admin"]
    assert ids(get_inbox(client, admin, q="zyxwvu")) == {c1, c2}
    cust = hub.redis.hget(hub.keys.conversation(c1), "customer").decode()
    assert client.delete(f"/api/v1/customers/{cust}", headers=auth(admin)).status_code == 200
    assert ids(get_inbox(client, admin, q="zyxwvu")) == {c2}
    assert ids(get_inbox(client, admin, q="do quyen")) == set()
    on_disk = b"".join(p.read_bytes() for p in here.parent.glob(here.name + "*"))
    assert b"bi mat" not in on_disk and b"quyen" not in on_disk
    assert b"zyxwvu cung" in on_disk  # (the other customer's row is there, in the same form)
    feed.run_pending(hub, ["search"])  # (this node's reactor rewrites the postings too)
    assert ids(get_inbox(client, admin, q="zyxwvu")) == {c2}
    # the other node hears of it on the feed
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "node2"))
    erased = [e for e in feed.read_after(hub, "0-0", count=10_000)
              if e.type == "customer.erased"]
    search_feed.on_events(hub, erased)
    other = search_index.open_index()
    assert other.count() == (1, 1)
    on_disk = b"".join(p.read_bytes() for p in other.path.parent.glob(other.path.name + "*"))
    assert b"bi mat" not in on_disk and b"quyen" not in on_disk


def test_reindex_rebuilds_from_redis(client, hub, people, redis_url, config_file,
                                     monkeypatch):
    say(client, 831, "cần đổi size áo", name="Vy")
    drain_all(hub)
    conv = conv_of(hub, 831)
    admin = people["admin"]
    assert ids(get_inbox(client, admin, q="doi size")) == set()   # the reactor has not run
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("TONGDAI_CONFIG", str(config_file))
    from tongdai.core.cli import main

    out = CliRunner().invoke(main, ["search", "reindex"])
    assert out.exit_code == 0, out.output
    assert "indexed 1 messages of 1 conversations and 1 customers" in out.output
    assert ids(get_inbox(client, admin, q="doi size")) == {conv}
    assert ids(get_inbox(client, admin, q="vy")) == {conv}     # a short name: a whole word
    out = CliRunner().invoke(main, ["search", "status"])
    assert "1 messages, 1 customers" in out.output
    # a node whose index file is gone rebuilds it on the reactor's next batch
    search_index.open_index().clear()
    say(client, 831, "và đổi màu nữa", name="Vy")
    index_now(hub)
    assert ids(get_inbox(client, admin, q="doi mau")) == {conv}
    assert ids(get_inbox(client, admin, q="doi size")) == {conv}
    # a node away longer than the feed holds (its last entry read is gone): rebuilt too
    index = search_index.open_index()
    index.forget([conv], [])
    index.set_state("feed", "1-0")
    say(client, 832, "alo", name="Khác")
    index_now(hub)
    assert ids(get_inbox(client, admin, q="doi mau")) == {conv}
