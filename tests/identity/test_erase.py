"""Erasing a customer on request: nothing personal is left in Redis, on disk or in the retained
raw log; anonymous counts stay; their next message starts afresh; only admins may do it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import auth
from tests.identity.people import customer_of, feed, tg_contact, tg_text, zalo_submit, zalo_text
from tests.test_encryption_at_rest import _values
from tongdai.core.pipeline import rawlog


def _append(hub, *raws):
    for raw in raws:
        rawlog.append(hub, raw)


def test_erase_leaves_counts_and_nothing_personal(hub, client, admin_token):
    from tests.helpers import drain_all
    from tongdai.core.workspace import tokens

    # (message text rests in clear unless security.encrypt_message_text: erase must remove it)
    _append(hub, tg_text(5001, "Đơn hàng của Phạm Thu Hà"), tg_contact(5001, "0977000111"),
            zalo_text("z-ha", "chào shop"), zalo_submit("z-ha", "0977000111"),
            tg_text(5002, "khách khác"))
    drain_all(hub)
    ha, other = customer_of(hub, "tg-test", "5001"), customer_of(hub, "tg-test", "5002")
    assert ha == customer_of(hub, "zalo-test", "z-ha")
    agent = tokens.create(hub, "bob", "agent")
    assert client.delete(f"/api/v1/customers/{ha}", headers=auth(agent)).status_code == 403

    r = client.delete(f"/api/v1/customers/{ha}", headers=auth(admin_token))
    assert r.status_code == 200, r.json
    assert (r.json["conversations"], r.json["messages"], r.json["identities"]) == (2, 4, 2)
    assert r.json["raw_events"] == 4
    cust = client.get(f"/api/v1/customers/{ha}", headers=auth(admin_token)).json
    assert cust["erased_ts"] and cust["name"] is None and cust["identities"] == []
    assert customer_of(hub, "tg-test", "5001") is None
    # the other customer and their raw event are untouched
    assert customer_of(hub, "tg-test", "5002") == other
    left = [raw for b in rawlog.since(hub, 0) for raw in b.events]
    assert [raw.channel_id for raw in left] == ["tg-test"] and b"5002" in left[0].body
    dump = b" ".join(_values(hub.redis, k) for k in hub.redis.scan_iter("td:*"))  # not DUMP: LZF
    assert "Thu Hà".encode() not in dump and b"977000111" not in dump
    assert int(hub.redis.hget(hub.keys.stats(), "erased:customers")) == 1
    # they write again: a new customer, with no history
    feed(hub, tg_text(5001, "tôi quay lại"))
    again = customer_of(hub, "tg-test", "5001")
    assert again not in (None, ha)


def test_erase_from_the_command_line(hub, redis_url, config_file):
    feed(hub, tg_text(5101, "xin chào"))
    cid = customer_of(hub, "tg-test", "5101")
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "customer", "erase", cid, "--yes"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "messages=1" in out.stdout
    assert customer_of(hub, "tg-test", "5101") is None


def test_erase_takes_merged_customers_and_only_their_own_files(hub, client, admin_token):
    """Review findings (2026-11-23): erasing a merged customer left the merged-in one behind
    (a split brought it back), and deleted a file another customer had sent too."""
    from tests.identity.people import mail

    logo = b"\x89PNG the shop's logo, quoted back by everyone"

    def with_logo(sender):
        raw = mail(sender, "ảnh đây", dmarc=False)
        from email import message_from_bytes, policy

        m = message_from_bytes(raw.body, policy=policy.default)
        m.add_attachment(logo, maintype="image", subtype="png", filename="logo.png")
        return type(raw)(raw.channel_id, m.as_bytes(), {}, raw.received_ts_ms)

    feed(hub, with_logo("an@gmail.com"), with_logo("binh@gmail.com"), zalo_text("z-an", "hi"))
    an, binh = customer_of(hub, "mail", "an@gmail.com"), customer_of(hub, "mail", "binh@gmail.com")
    zalo_an = customer_of(hub, "zalo-test", "z-an")
    m = client.post(f"/api/v1/customers/{an}/merge", headers=auth(admin_token),
                    json={"source_customer_id": zalo_an, "why": "cùng một người"}).json
    assert client.delete(f"/api/v1/customers/{an}", headers=auth(admin_token)).status_code == 200
    assert client.post(f"/api/v1/merges/{m['id']}/split", json={"why": "x"},
                       headers=auth(admin_token)).status_code == 400
    gone = client.get(f"/api/v1/customers/{zalo_an}", headers=auth(admin_token)).json
    assert gone["erased_ts"] and gone["name"] is None
    # Bình's copy of the same logo still downloads
    conv = hub.redis.zrange(hub.keys.customer_conversations(binh), 0, -1)[0].decode()
    (msg,) = [x for x in client.get(f"/api/v1/conversations/{conv}/messages",
                                    headers=auth(admin_token)).json["items"] if x["attachments"]]
    n = next(i for i, a in enumerate(msg["attachments"]) if a["name"] == "logo.png")
    r = client.get(f"/api/v1/conversations/{conv}/messages/{msg['id']}/attachments/{n}",
                   headers=auth(admin_token))
    assert r.status_code == 200 and r.data == logo


def test_a_worker_with_cached_keys_never_seals_new_data_with_an_erased_key(hub, redis_url,
                                                                           config_file):
    """Another process erases the customer while this worker still caches their key: the
    worker's next batch is refused by the ingest script, drops its cache and runs again, so
    the returning customer's name is readable (not sealed with the destroyed key)."""
    from tests.test_key_rotation import OLD, hub_with
    from tongdai.core.pipeline import store
    from tongdai.core.workspace.privacy import erase_customer

    feed(hub, tg_text(7001, "lần đầu", name="Vũ Thị Hạnh"))
    first = customer_of(hub, "tg-test", "7001")
    feed(hub, tg_text(7002, "someone else"))  # this worker has read the erasure counter
    other_process = hub_with(OLD, redis_url, config_file)
    erase_customer(other_process, first, "dpo")
    feed(hub, tg_text(7001, "tôi quay lại", name="Vũ Thị Hạnh"))  # cached key: destroyed
    again = customer_of(hub, "tg-test", "7001")
    assert again not in (None, first)
    fresh = hub_with(OLD, redis_url, config_file)  # nothing cached: what anyone reads later
    assert store.get_customer(fresh, again).name == "Vũ Thị Hạnh"
