"""Merging on proof, suggesting on anything less, and undoing any merge — through the real
adapters, the ingest script and the API."""

from __future__ import annotations

import orjson

from tests.helpers import auth
from tests.identity.people import (
    customer_of,
    feed,
    mail,
    tg_contact,
    tg_text,
    zalo_submit,
    zalo_text,
)
from tongdai.core.identity import graph as identity
from tongdai.core.pipeline import store

PHONE_TG = "84912345678"  # how Telegram writes it
PHONE_ZALO = "0912345678"  # how a Vietnamese customer types it: the same number


def test_the_same_verified_phone_on_two_channels_is_one_customer(hub, client, admin_token):
    feed(hub, tg_text(501, "Chào shop"), tg_contact(501, PHONE_TG, name="Lan"))
    feed(hub, zalo_text("z-lan", "Mình hỏi đơn hàng"), zalo_submit("z-lan", PHONE_ZALO))
    tg, zl = customer_of(hub, "tg-test", "501"), customer_of(hub, "zalo-test", "z-lan")
    assert tg == zl
    cust = client.get(f"/api/v1/customers/{tg}", headers=auth(admin_token)).json
    assert {i["channel_id"] for i in cust["identities"]} == {"tg-test", "zalo-test"}
    assert [(i["kind"], i["value"], i["verified"]) for i in cust["identifiers"]] == [
        ("phone", "+84912345678", True)]
    # both conversations are the customer's: the cross-channel history stays together
    convs = hub.redis.zrange(hub.keys.customer_conversations(tg), 0, -1)
    assert len(convs) == 2
    (m,) = identity.merges_of(hub, tg)
    assert m["why"] == "verified phone (zalo_user_submit_info)" and m["by"] == "system"


def test_a_typed_number_never_merges_only_suggests(hub, client, admin_token):
    feed(hub, tg_contact(601, PHONE_TG, name="Lan"))
    # a stranger types Lan's number into Zalo: no merge, no access to Lan's history
    feed(hub, zalo_text("z-evil", "số của tôi là 0912 345 678, gửi lịch sử đơn cho tôi"))
    lan, evil = customer_of(hub, "tg-test", "601"), customer_of(hub, "zalo-test", "z-evil")
    assert lan != evil
    (s,) = client.get(f"/api/v1/customers/{lan}/suggestions", headers=auth(admin_token)).json[
        "items"]
    assert set(s["customer_ids"]) == {lan, evil}
    (ev,) = s["evidence"]
    assert ev["kind"] == "phone" and ev["source"] == "typed"
    assert ev["verified"] == {evil: False, lan: True}
    # facts a console words in its own language (the English note stays for old clients)
    assert ev["reason"] == "unverified" and ev["note"] == "matches, but not verified by both"


def test_evidence_stored_with_an_english_note_only_gets_its_reason(hub, client, admin_token):
    # stored before evidence carried a reason: the API still says which case it is
    feed(hub, tg_contact(611, PHONE_TG), zalo_text("z-611", "sđt 0912 345 678"))
    lan, other = customer_of(hub, "tg-test", "611"), customer_of(hub, "zalo-test", "z-611")
    (s,) = identity.suggestions(hub, lan)
    key = hub.keys.suggestion(s["id"])
    (field,) = [f for f in hub.redis.hkeys(key) if f.startswith(b"ev:")]
    hub.redis.hset(key, field, orjson.dumps({
        "kind": "phone", "source": "typed", "verified": {lan: True, other: True},
        "note": "each has an account of their own on tg-test", "at": 1}))
    (s,) = client.get(f"/api/v1/customers/{lan}/suggestions", headers=auth(admin_token)).json[
        "items"]
    (ev,) = s["evidence"]
    assert (ev["reason"], ev["detail"]) == ("own_account", "tg-test")


def test_verified_on_one_side_only_is_a_suggestion(hub):
    feed(hub, mail("hoa@gmail.com", "xin chào", dmarc=True))
    feed(hub, mail("Hoa@GMAIL.com", "mình là Hoa", dmarc=False))  # a spoofable claim
    a = customer_of(hub, "mail", "hoa@gmail.com")
    assert a is not None and len(identity.suggestions(hub, a)) == 0  # same identity: one customer
    feed(hub, tg_text(701, "email của mình là h.o.a+shop@gmail.com"))
    b = customer_of(hub, "tg-test", "701")
    assert a != b
    (s,) = identity.suggestions(hub, a)
    assert set(s["customer_ids"]) == {a, b}


def test_conflicting_verified_identifiers_are_not_merged(hub):
    feed(hub, tg_contact(801, PHONE_TG), mail("mai@gmail.com", "hi", dmarc=True))
    feed(hub, tg_contact(802, "+84987654321"))
    # one mailbox verified for both Telegram customers' numbers would say two people share it
    feed(hub, tg_text(801, "mai@gmail.com"))  # a typed claim, for the record
    a, b = customer_of(hub, "tg-test", "801"), customer_of(hub, "tg-test", "802")
    feed(hub, zalo_submit("z-x", PHONE_ZALO), zalo_submit("z-x", "0987654321"))
    z = customer_of(hub, "zalo-test", "z-x")
    # z verified A's number: merged into A; then B's number: A and B each have another
    # verified phone, and each a Telegram account of their own: a suggestion, not a merge
    assert z == a and a != b
    assert any(set(s["customer_ids"]) == {a, b} for s in identity.suggestions(hub, a))


def test_split_restores_both_customers_and_they_stay_apart(hub, client, admin_token):
    feed(hub, tg_text(901, "Chào"), tg_contact(901, PHONE_TG, name="Lan"))
    feed(hub, zalo_text("z-901", "Hỏi đơn"), zalo_submit("z-901", PHONE_ZALO, name="Lan Z"))
    lan = customer_of(hub, "tg-test", "901")
    (m,) = identity.merges_of(hub, lan)
    zalo_customer = m["source_customer_id"]
    before = store.get_customer(hub, zalo_customer)
    assert before.identities == []  # everything moved to Lan

    r = client.post(f"/api/v1/merges/{m['id']}/split", json={"why": "chị gái dùng chung số"},
                    headers=auth(admin_token))
    assert r.status_code == 200, r.json
    assert r.json["split"]["by"] == "alice" and r.json["split"]["why"] == "chị gái dùng chung số"
    assert customer_of(hub, "zalo-test", "z-901") == zalo_customer
    assert customer_of(hub, "tg-test", "901") == lan
    restored = store.get_customer(hub, zalo_customer)
    assert [i.channel_id for i in restored.identities] == ["zalo-test"]
    assert [(i["kind"], i["verified"]) for i in restored.identifiers] == [("phone", True)]
    zconvs = [c.decode() for c in hub.redis.zrange(
        hub.keys.customer_conversations(zalo_customer), 0, -1)]
    assert len(zconvs) == 1 and store.get_conversation(hub, zconvs[0]).channel_id == "zalo-test"
    assert len(hub.redis.zrange(hub.keys.customer_conversations(lan), 0, -1)) == 1
    # the same verified number again: they stay apart (an agent decided), evidence is kept
    feed(hub, zalo_submit("z-901", PHONE_ZALO))
    assert customer_of(hub, "zalo-test", "z-901") == zalo_customer
    audit = client.get(f"/api/v1/customers/{lan}/merges", headers=auth(admin_token)).json
    assert [a["status"] for a in audit["items"]] == ["split"]


def test_agent_merge_and_split_through_the_api(hub, client, admin_token):
    feed(hub, tg_text(1001, "Chào"), zalo_text("z-1001", "Chào shop"))
    a, b = customer_of(hub, "tg-test", "1001"), customer_of(hub, "zalo-test", "z-1001")
    r = client.post(f"/api/v1/customers/{a}/merge", json={"source_customer_id": b},
                    headers=auth(admin_token))
    assert r.status_code == 400 and "why" in r.json["error"]["message"]
    r = client.post(f"/api/v1/customers/{a}/merge",
                    json={"source_customer_id": b, "why": "khách xác nhận qua điện thoại"},
                    headers=auth(admin_token))
    assert r.status_code == 200, r.json
    assert customer_of(hub, "zalo-test", "z-1001") == a
    # the merged customer's next message lands with the merged customer
    feed(hub, zalo_text("z-1001", "mình gửi thêm ảnh"))
    later = [c.decode() for c in hub.redis.zrange(hub.keys.customer_conversations(a), 0, -1)]
    r = client.post(f"/api/v1/merges/{r.json['id']}/split", json={"why": "nhầm người"},
                    headers=auth(admin_token))
    assert r.status_code == 200
    assert customer_of(hub, "zalo-test", "z-1001") == b
    assert set(later) == {c.decode() for c in hub.redis.zrange(
        hub.keys.customer_conversations(a), 0, -1)} | {c.decode() for c in hub.redis.zrange(
            hub.keys.customer_conversations(b), 0, -1)}
    again = client.post(f"/api/v1/merges/{r.json['id']}/split", json={"why": "x"},
                        headers=auth(admin_token))
    assert again.status_code == 400


def test_link_code_links_two_channels_once(hub, client, admin_token):
    feed(hub, tg_text(1101, "Chào shop"))
    a = customer_of(hub, "tg-test", "1101")
    r = client.post(f"/api/v1/customers/{a}/link-code", headers=auth(admin_token, "new"))
    assert r.status_code == 201, r.json
    code = r.json["code"]
    feed(hub, zalo_text("z-1101", f"mã của mình: {code.lower()}"))
    assert customer_of(hub, "zalo-test", "z-1101") == a
    (m,) = identity.merges_of(hub, a)
    assert m["why"] == "link code"
    # single use: someone else sending the same code links nothing
    feed(hub, zalo_text("z-other", code))
    assert customer_of(hub, "zalo-test", "z-other") != a


def test_link_codes_resist_guessing_and_are_rate_limited(hub, client, admin_token):
    feed(hub, tg_text(1201, "Chào"))
    a = customer_of(hub, "tg-test", "1201")
    code = client.post(f"/api/v1/customers/{a}/link-code", headers=auth(admin_token, "new")).json["code"]
    for guess in ("TD-AAAAAA", "TD-BBBBBB", "TD-CCCCCC", "TD-DDDDDD", "TD-EEEEEE"):
        feed(hub, zalo_text("z-guess", guess))
    feed(hub, zalo_text("z-guess", code))  # the 6th try, even right, is refused
    assert customer_of(hub, "zalo-test", "z-guess") != a
    for _ in range(4):
        assert client.post(f"/api/v1/customers/{a}/link-code",
                           headers=auth(admin_token, "new")).status_code == 201
    assert client.post(f"/api/v1/customers/{a}/link-code",
                       headers=auth(admin_token, "new")).status_code == 403


def _texts(hub, customer_id: str) -> set[str]:
    out = set()
    for conv in hub.redis.zrange(hub.keys.customer_conversations(customer_id), 0, -1):
        out |= {m.text for m in store.message_page(hub, conv.decode(), None, 100).items}
    return out


def test_split_gives_each_customer_what_they_wrote_while_merged(hub):
    """Review finding (2026-11-23): after a merge both write into one conversation; a split
    must give the merged customer back its messages and never the other's."""
    feed(hub, tg_text(1301, "A trước"), zalo_text("z-1301", "B trước"))
    a, b = customer_of(hub, "tg-test", "1301"), customer_of(hub, "zalo-test", "z-1301")
    m = identity.merge(hub, a, b, "alice", "thử")
    feed(hub, zalo_text("z-1301", "B trong lúc gộp"), tg_text(1301, "A: nhà tôi ở 99 Trần Hưng Đạo"))
    assert {"A trước", "B trước", "B trong lúc gộp", "A: nhà tôi ở 99 Trần Hưng Đạo"} <= _texts(
        hub, a)
    identity.split(hub, m["id"], "alice", "hai người khác nhau")
    assert _texts(hub, b) == {"B trước", "B trong lúc gộp"}
    assert _texts(hub, a) == {"A trước", "A: nhà tôi ở 99 Trần Hưng Đạo"}


def test_the_shops_own_address_typed_by_customers_links_nobody(hub):
    feed(hub, tg_text(1401, "mình đã gửi mail tới support@shop.example.vn rồi"),
         zalo_text("z-1401", "đã mail Support@Shop.Example.vn hôm qua"))
    a, b = customer_of(hub, "tg-test", "1401"), customer_of(hub, "zalo-test", "z-1401")
    assert a != b and identity.suggestions(hub, a) == []
    assert store.get_customer(hub, a).identifiers == []
