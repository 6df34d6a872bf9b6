"""Search with a channel (issue #17): the index knows every channel each conversation has had
and sends only those conversations to Redis's check, which still decides on the current
channel. A customer linked across channels writes into the same conversation from the second
one: the conversation moves channel, and a search on its new channel still finds it once the
search reactor has read that message; results equal those of the search without the channel,
kept to the conversations on that channel, page after page. And paging itself: a conversation
is shown once whatever its other matches, with or without ``until``.

Messages go through the real adapters and ingest (tests/identity/people.py), the index is fed
by its reactor on the change feed; asserts go through /api/v1.
"""

from __future__ import annotations

import pytest

from tests.conftest import write_config
from tests.identity.people import config_extra, customer_of, feed, tg_text, zalo_text
from tests.workspace.conftest import TEAMS
from tests.workspace.test_inbox import get_inbox, ids
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import feed as change_feed
from tongdai.core.pipeline import store
from tongdai.core.workspace import search, search_feed, search_index


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=config_extra() + TEAMS)


def index_now(hub) -> None:
    change_feed.run_pending(hub, ["search"])


def conv_of(hub, channel: str, user: str) -> str:
    return hub.redis.hget(hub.keys.customer(customer_of(hub, channel, user)), "conv").decode()


def channel_of(hub, conv: str) -> str:
    return hub.redis.hget(hub.keys.conversation(conv), "channel").decode()


def search_store_page(hub, conv: bytes) -> list:
    return store.message_page(hub, conv.decode(), None, 100).items


def every_page(client, token: str, **params) -> list[str]:
    seen, cursor = [], None
    while True:
        page = get_inbox(client, token, limit=2, **params, **({"cursor": cursor} if cursor else {}))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


def test_a_conversation_that_moved_channel_is_found_on_its_new_one(client, hub, people):
    feed(hub, tg_text(7101, "Nạp thẻ 200k mà chưa thấy vào tài khoản", name="Lan"))
    index_now(hub)
    conv = conv_of(hub, "tg-test", "7101")
    admin = people["admin"]
    assert ids(get_inbox(client, admin, q="nap the", channel="tg-test")) == {conv}
    # Lan links her Zalo and writes from there: the same conversation, now on Zalo
    code = identity.issue_link_code(hub, customer_of(hub, "tg-test", "7101"))["code"]
    feed(hub, zalo_text("z-7101", f"mình đây, mã {code}"))
    assert conv_of(hub, "zalo-test", "z-7101") == conv
    assert channel_of(hub, conv) == "zalo-test"
    index_now(hub)
    # the Telegram message matches; the conversation is found on the channel it is on now
    assert ids(get_inbox(client, admin, q="nap the", channel="zalo-test")) == {conv}
    assert ids(get_inbox(client, admin, q="nap the", channel="tg-test")) == set()
    # a rebuild from Redis knows it too
    assert search_feed.reindex(hub)["messages"] == 2
    assert ids(get_inbox(client, admin, q="nap the", channel="zalo-test")) == {conv}
    # erasure takes the conversation's channels out with its messages
    index = search_index.open_index()
    index.forget([conv], [])
    assert index.db.execute("SELECT count(*) FROM conv_channel WHERE conv=?",
                            (conv,)).fetchone()[0] == 0


def eleven_matches(hub) -> None:
    """Eleven conversations match "nap the": five on Telegram, five on Zalo, and one that
    moved from Telegram to Zalo; one Telegram conversation matches twice."""
    for n in range(5):
        feed(hub, tg_text(7200 + n, f"nap the lan {n} bi loi", name=f"T{n}"))
        feed(hub, zalo_text(f"z-72{n}", f"nạp thẻ không được {n}"))
    feed(hub, tg_text(7299, "hỏi về nạp thẻ", name="Moved"))
    code = identity.issue_link_code(hub, customer_of(hub, "tg-test", "7299"))["code"]
    feed(hub, zalo_text("z-7299", f"mã {code}"))  # (moves that conversation to Zalo)
    feed(hub, tg_text(7201, "nap the lai lan nua"))  # (a second match, newest)
    index_now(hub)


def test_channel_results_equal_the_unfiltered_ones_kept_to_that_channel(client, hub, people,
                                                                       monkeypatch):
    eleven_matches(hub)
    admin, bich = people["admin"], people["bich"]
    checked = [0]
    real = search.passing

    def counting(hub, conv_ids, *a, **kw):
        checked[0] += len(conv_ids)
        return real(hub, conv_ids, *a, **kw)

    monkeypatch.setattr(search, "passing", counting)
    moved = conv_of(hub, "tg-test", "7299")
    for who in (admin, bich):
        everything = every_page(client, who, q="nap the")
        for channel in ("tg-test", "zalo-test"):
            got = every_page(client, who, q="nap the", channel=channel)
            assert got == [c for c in everything if channel_of(hub, c) == channel]
    assert moved in every_page(client, admin, q="nap the", channel="zalo-test")
    # eleven conversations match; six have been on each channel (the moved one on both):
    # only those go to Redis's check
    checked[0] = 0
    assert len(ids(get_inbox(client, admin, q="nap the"))) == 11
    assert checked[0] == 11
    for channel in ("tg-test", "zalo-test"):
        checked[0] = 0
        get_inbox(client, admin, q="nap the", channel=channel)
        assert checked[0] == 6


def test_a_walk_cut_short_goes_on_from_where_it_stopped(client, hub, people, monkeypatch):
    """One request walks about ``SEARCH_SCAN`` matching messages, then answers a shorter page
    with a cursor; with a channel, the index skips the other conversations' rows and returns
    a mark for each ``MARK`` of them (here every one), which count for the walk and place the
    cursor. Page after page, nothing is lost or shown twice."""
    eleven_matches(hub)
    admin, bich = people["admin"], people["bich"]
    expected = {(who, ch): [c for c in every_page(client, who, q="nap the")
                            if ch is None or channel_of(hub, c) == ch]
                for who in (admin, bich) for ch in (None, "tg-test", "zalo-test")}
    monkeypatch.setattr(search, "SEARCH_SCAN", 3)
    monkeypatch.setattr(search_index, "MARK", 1)
    short = 0
    for (who, ch), want in expected.items():
        seen, cursor = [], None
        for _ in range(40):
            extra = {"channel": ch} if ch else {}
            page = get_inbox(client, who, limit=2, q="nap the", **extra,
                             **({"cursor": cursor} if cursor else {}))
            seen += [i["id"] for i in page["items"]]
            short += len(page["items"]) < 2 and page["next_cursor"] is not None
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == want, (who, ch)
    assert short  # (the budget did cut walks short)


def test_an_index_from_before_channels_were_kept_learns_them_without_a_rebuild(client, hub,
                                                                               people):
    feed(hub, tg_text(7301, "nạp thẻ lỗi rồi shop ơi", name="Cũ"))
    index_now(hub)
    conv = conv_of(hub, "tg-test", "7301")
    index = search_index.open_index()  # as an older version left it: no channels
    index.db.execute("DELETE FROM conv_channel")
    index.db.execute("DELETE FROM state WHERE k=?", (search_index.CHANNELS,))
    index.set_state("built", "before")
    admin = people["admin"]
    feed(hub, tg_text(7302, "alo", name="Mới"))  # the reactor's next batch
    index_now(hub)
    assert index.db.execute("SELECT channel FROM conv_channel WHERE conv=?",
                            (conv,)).fetchall() == [("tg-test",)]  # read from Redis
    assert ids(get_inbox(client, admin, q="nap the", channel="tg-test")) == {conv}
    assert ids(get_inbox(client, admin, q="nap the", channel="zalo-test")) == set()
    assert index.get_state("built") == "before"  # (not rebuilt)


def test_after_a_split_a_search_finds_the_message_where_it_went(client, hub, people):
    """A split gives the merged customer back what they wrote while merged (it moves those
    messages to their own conversation): the index follows, and a search opens the
    conversation the message is in now."""
    feed(hub, tg_text(7301, "A trước"), zalo_text("z-7301", "B trước"))
    a, b = customer_of(hub, "tg-test", "7301"), customer_of(hub, "zalo-test", "z-7301")
    merged = identity.merge(hub, a, b, "alice", "thử")
    feed(hub, zalo_text("z-7301", "B hỏi rút tiền bị lỗi"))
    index_now(hub)
    admin = people["admin"]
    before = ids(get_inbox(client, admin, q="rut tien"))
    identity.split(hub, merged["id"], "alice", "hai người khác nhau")
    index_now(hub)
    now_in = {c.decode() for c in hub.redis.zrange(hub.keys.customer_conversations(b), 0, -1)
              if any(m.text == "B hỏi rút tiền bị lỗi" for m in search_store_page(hub, c))}
    assert len(now_in) == 1 and ids(get_inbox(client, admin, q="rut tien")) == now_in
    assert before != now_in  # it did move: the search followed it


def all_pages(client, token: str, limit: int, **params) -> list[str]:
    seen, cursor = [], None
    for _ in range(20):
        page = get_inbox(client, token, limit=limit, **params,
                         **({"cursor": cursor} if cursor else {}))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen
    raise AssertionError(f"no end: {seen}")


def test_a_customer_who_writes_it_twice_is_shown_once(client, hub, people):
    """Lan's conversation ends the first page; her older match comes next in the walk: the
    next page must not show her again (the cursor's own row is hers). Found by review: pages
    of 2 gave [Newest, Lan], [Lan, Older]."""
    feed(hub, tg_text(7400, "nạp thẻ không vào", name="Older"))
    feed(hub, tg_text(7401, "nạp thẻ bị lỗi", name="Lan"))
    feed(hub, tg_text(7401, "shop ơi nạp thẻ vẫn lỗi", name="Lan"))
    feed(hub, tg_text(7402, "nap the giup em", name="Newest"))
    index_now(hub)
    want = [conv_of(hub, "tg-test", u) for u in ("7402", "7401", "7400")]
    for limit in (1, 2, 3):
        assert all_pages(client, people["admin"], limit, q="nap the") == want, limit


def test_until_pages_keep_a_conversation_that_matched_again_later(client, hub, people):
    """A wrote "nạp thẻ" before ``until`` and again after it: the later match was never
    walked, so it must not count as shown — paging by one used to lose A."""
    feed(hub, tg_text(7500, "nạp thẻ lần đầu", name="A"))
    feed(hub, tg_text(7501, "nap the B", name="B"))
    feed(hub, tg_text(7502, "nap the C", name="C"))
    feed(hub, tg_text(7503, "chao shop", name="X"))
    feed(hub, tg_text(7500, "nạp thẻ lần nữa", name="A"))  # after `until`
    index_now(hub)
    rows = search_index.open_index().db.execute(
        "SELECT id FROM msg_meta ORDER BY id DESC").fetchall()
    until = rows[1][0] // 1024  # the "chao shop" message's time: A's second match is later
    admin = people["admin"]
    everything = [i["id"] for i in get_inbox(client, admin, limit=50, q="nap the",
                                              until=until)["items"]]
    assert conv_of(hub, "tg-test", "7500") in everything and len(everything) == 3
    for limit in (1, 2):
        assert all_pages(client, admin, limit, q="nap the", until=until) == everything, limit
