"""Verified phone numbers and mail addresses never rest in clear: not in any key or value, not
in Redis's AOF or RDB, not in the files on disk, not in the logs — after customers verified
them on Telegram, Zalo and by mail, and after those identities were merged. The same search
finds a control text that is meant to stay readable."""

from __future__ import annotations

import logging

import pytest
import redis

from tests.identity.people import feed, mail, tg_contact, tg_text, zalo_submit
from tests.test_encryption_at_rest import _values
from tongdai.core.config import load_config
from tongdai.core.crypto import load_keyring
from tongdai.core.hub import Hub
from tongdai.core.redis_server import EmbeddedRedis

MAILBOX = "tran.van.binh@gmail.com"
CONTROL = "control text meant to stay readable"
# every spelling a number takes on its way: as Telegram sends it, E.164, as typed in Vietnam
PHONES = ("84987001122", "+84987001122", "0987001122", "987001122")


@pytest.fixture
def disk_hub(tmp_path, config_file, monkeypatch):
    server = EmbeddedRedis(tmp_path / "var", appendfsync="always", persistent=True)
    server.start()
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "var"))
    hub = Hub(load_config(str(config_file)), redis.Redis.from_url(server.url),
              load_keyring(tmp_path / "var"))
    from tongdai.core.pipeline import rawlog

    rawlog.ensure_groups(hub)
    yield hub, server, tmp_path / "var"
    server.stop()


def test_no_verified_identifier_in_clear_anywhere(disk_hub, caplog):
    hub, server, data_dir = disk_hub
    caplog.set_level(logging.DEBUG)
    feed(hub, tg_text(4001, CONTROL, name="Bình"), tg_contact(4001, PHONES[0], name="Bình"),
         zalo_submit("z-binh", PHONES[2], name="Bình"), mail(MAILBOX, "xin chào", dmarc=True))
    from tests.identity.people import customer_of
    from tongdai.core.identity import graph as identity
    from tongdai.core.pipeline import rawlog

    binh = customer_of(hub, "tg-test", "4001")
    assert binh == customer_of(hub, "zalo-test", "z-binh")  # merged on the verified number
    for raw in (r for b in rawlog.since(hub, 0) for r in b.events):
        assert raw.body  # the raw log is there (encrypted at rest)
    assert identity.merges_of(hub, binh)

    r = hub.redis
    dump = b"".join(_values(r, k) for k in r.scan_iter("*"))
    r.config_set("rdbcompression", "no")
    r.save()
    files = {"keys": dump,
             "AOF": (server.data_dir / "appendonly.aof").read_bytes(),
             "RDB": (server.data_dir / "dump.rdb").read_bytes(),
             "blobs": b"".join(p.read_bytes() for p in (data_dir / "blobs").rglob("*")
                               if p.is_file()),
             "logs": caplog.text.encode()}
    for where, data in files.items():
        assert data, where
        for secret in (*PHONES, MAILBOX, "tranvanbinh@gmail.com"):  # as written, canonical
            assert secret.encode() not in data, f"{secret} in clear in {where}"
    assert CONTROL.encode() in files["AOF"] and CONTROL.encode() in files["keys"]


def _readable(hub, data: bytes) -> set[str]:
    """Every ``enc:`` value in a copy of Redis's files that the hub can still decrypt."""
    import re

    out = set()
    for token in set(re.findall(rb"enc:[A-Za-z0-9+/=]{16,}", data)):
        for purpose in (b"name", b"identifier", b"address", b"contact", b"text"):
            try:
                value = hub.keyring.decrypt_text(token.decode(), purpose)
            except ValueError:
                continue
            if value:
                out.add(value)
    return out


def test_erase_makes_old_copies_unreadable(disk_hub):
    """A backup taken before the erase (here: the AOF as it was) keeps the ciphertexts, but
    with the customer's own keys destroyed nothing in it decrypts — the data keys are intact."""
    hub, server, _ = disk_hub
    feed(hub, tg_contact(4101, PHONES[0], name="Trần Văn Bình"),
         mail(MAILBOX, "xin chào", dmarc=True), tg_text(4102, "another customer", name="Cúc"))
    from tests.identity.people import customer_of
    from tongdai.core.workspace.privacy import erase_customer

    backup = (server.data_dir / "appendonly.aof").read_bytes()
    before = _readable(hub, backup)
    assert {"Trần Văn Bình", "+84987001122", "Cúc"} <= before  # the control: readable now
    erase_customer(hub, customer_of(hub, "tg-test", "4101"), "dpo")
    erase_customer(hub, customer_of(hub, "mail", MAILBOX), "dpo")
    hub.subjects._cache.clear()  # another process, or later: nothing cached
    after = _readable(hub, backup)
    assert "Trần Văn Bình" not in after and "+84987001122" not in after
    assert MAILBOX not in after
    assert "Cúc" in after  # other customers' data still reads
