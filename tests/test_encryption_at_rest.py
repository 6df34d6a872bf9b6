"""Customer data at rest: no phone number or name in clear, in any key or in Redis's own
files on disk (AOF and RDB). A control text that is meant to stay readable proves the
search would have found them."""

from __future__ import annotations

import orjson
import pytest
import redis

from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.config import load_config
from tongdai.core.crypto import load_keyring
from tongdai.core.hub import Hub
from tongdai.core.redis_server import EmbeddedRedis

PHONE = "84912345678"
NAME = "Nguyễn Thị Mai"
MARKER = "marker text meant to stay readable"


def _values(r: redis.Redis, key: bytes) -> bytes:
    kind = r.type(key)
    if kind == b"string":
        parts = [r.get(key)]
    elif kind == b"hash":
        parts = [x for kv in r.hgetall(key).items() for x in kv]
    elif kind == b"set":
        parts = list(r.smembers(key))
    elif kind == b"zset":
        parts = r.zrange(key, 0, -1)
    elif kind == b"list":
        parts = r.lrange(key, 0, -1)
    elif kind == b"stream":
        parts = [x for _, f in r.xrange(key) for kv in f.items() for x in kv]
    else:
        raise AssertionError(f"unexpected key type {kind} of {key}")
    return key + b"\n" + b"\n".join(p if isinstance(p, bytes) else str(p).encode()
                                     for p in parts if p is not None)


@pytest.fixture(params=[False, True], ids=["text-clear", "text-encrypted"])
def disk_hub(request, tmp_path, config_file, monkeypatch):
    """A Hub on a persistent embedded Redis (append-only file on) in a temp dir."""
    if request.param:
        config_file.write_text(config_file.read_text() + "security:\n  encrypt_message_text: true\n")
    server = EmbeddedRedis(tmp_path / "var", appendfsync="always", persistent=True)
    server.start()
    monkeypatch.setenv("REDIS_URL", server.url)
    monkeypatch.setenv("TONGDAI_CONFIG", str(config_file))
    hub = Hub(load_config(str(config_file)), redis.Redis.from_url(server.url),
              load_keyring(tmp_path / "var"))
    from tongdai.core.pipeline import rawlog

    rawlog.ensure_groups(hub)
    yield hub, server, request.param
    server.stop()


def test_no_phone_or_name_in_clear_anywhere(disk_hub):
    from tongdai.webhooks import create_app

    hub, server, text_encrypted = disk_hub
    client = create_app(hub, {"TESTING": True}).test_client()
    from tongdai.core.workspace import tokens

    token = tokens.create(hub, "alice", "admin")
    user = {"id": 4242, "is_bot": False, "first_name": "Nguyễn Thị", "last_name": "Mai"}
    contact = orjson.dumps({"update_id": 2, "message": {
        "message_id": 2, "date": 1700000001, "from": user, "chat": {"id": 4242, "type": "private"},
        "contact": {"phone_number": PHONE, "first_name": "Mai", "user_id": 4242}}})
    post(client, tg_update(1, 4242, 1, MARKER, first_name="Nguyễn Thị Mai"))
    post(client, contact)
    post(client, orjson.dumps({"update_id": 3, "message": {"message_id": 3, "text": PHONE}}))
    drain_all(hub)  # the last one is malformed: a dead letter carrying the phone

    # what agents see is decrypted
    (conv,) = client.get("/api/v1/conversations", headers=auth(token)).json["items"]
    cust = client.get(f"/api/v1/customers/{conv['customer_id']}", headers=auth(token)).json
    assert cust["name"] == NAME
    assert cust["identifiers"] == [{"kind": "phone", "value": "+" + PHONE, "verified": True,
                                    "source": "telegram_contact"}]  # normalised to E.164
    msgs = client.get(f"/api/v1/conversations/{conv['id']}/messages", headers=auth(token)).json
    card = next(m for m in msgs["items"] if m["kind"] == "contact_shared")
    assert card["attachments"][0]["meta"]["phone_number"] == PHONE
    assert MARKER in [m["text"] for m in msgs["items"]]

    # every key, every value (read by type: DUMP output is LZF-compressed and would hide text)
    r = hub.redis
    dump = b"".join(_values(r, k) for k in r.scan_iter("*"))
    # Redis's own files, uncompressed so a string cannot hide in LZF
    r.config_set("rdbcompression", "no")
    r.save()
    aof = (server.data_dir / "appendonly.aof").read_bytes()
    rdb = (server.data_dir / "dump.rdb").read_bytes()
    for where, data in (("keys", dump), ("AOF", aof), ("RDB", rdb)):
        assert PHONE.encode() not in data, f"phone in clear in {where}"
        assert NAME.encode() not in data and "Nguyễn Thị".encode() not in data, where
        # the control: message text is readable at rest unless its switch is on
        assert (MARKER.encode() in data) is (not text_encrypted), where


def test_customer_export_has_everything_decrypted(client, hub, redis_url, config_file):
    import json
    import os
    import subprocess
    import sys

    user = {"id": 4343, "is_bot": False, "first_name": "Lê", "last_name": "Hoa"}
    post(client, tg_update(1, 4343, 1, "Xin chào", first_name="Lê Hoa"))
    post(client, orjson.dumps({"update_id": 2, "message": {
        "message_id": 2, "date": 1700000002, "from": user, "chat": {"id": 4343, "type": "private"},
        "contact": {"phone_number": PHONE, "first_name": "Hoa", "user_id": 4343}}}))
    post(client, tg_update(3, 9999, 1, "someone else"))
    drain_all(hub)
    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "customer", "export", "1"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["customer"]["name"] == "Lê Hoa"
    assert data["customer"]["identifiers"][0]["value"] == "+" + PHONE
    (conv,) = data["conversations"]
    assert [m["kind"] for m in conv["messages"]] == ["message", "contact_shared"]  # oldest first
    assert "someone else" not in out.stdout
    assert data["channels"][0]["channel_id"] == "tg-test"
    missing = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "customer", "export", "999"],
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1 and "no customer 999" in missing.stderr
