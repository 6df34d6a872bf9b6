"""`tongdai keys rotate`: everything re-encrypted under the new key, resumable after a crash,
and readable once the old key is gone."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import orjson
import pytest
import redis

from tests.helpers import drain_all, post
from tongdai.core.config import load_config
from tongdai.core.crypto import _parse
from tongdai.core.hub import Hub
from tongdai.core.identity import rotation
from tongdai.core.pipeline import store

OLD = os.environ["TONGDAI_DATA_KEYS"]  # conftest's key, "ktest:..."
INDEX = os.environ["TONGDAI_INDEX_KEY"]
NEW = "k2:" + base64.b64encode(b"a-brand-new-data-key-of-32-bytes").decode()
USERS = 120


def contact_update(i: int) -> bytes:
    user = {"id": 5000 + i, "is_bot": False, "first_name": f"Khách {i}"}
    return orjson.dumps({"update_id": i + 1, "message": {
        "message_id": 1, "date": 1700000000 + i, "from": user,
        "chat": {"id": 5000 + i, "type": "private"},
        "contact": {"phone_number": f"8490{i:07d}", "first_name": "Lan", "user_id": 5000 + i}}})


def hub_with(keys: str, redis_url: str, config_file) -> Hub:
    return Hub(load_config(str(config_file)), redis.Redis.from_url(redis_url),
               _parse(keys, INDEX, "test"))


def test_rotate_resumes_after_a_crash_and_old_key_can_go(client, hub, redis_url, config_file):
    for i in range(USERS):
        post(client, contact_update(i))
    assert drain_all(hub)["stored"] == USERS

    rotating = hub_with(f"{NEW},{OLD}", redis_url, config_file)
    seen = {"n": 0}

    def crash_after_70(n: int) -> None:
        seen["n"] += n
        if seen["n"] >= 70:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a crash

    with pytest.raises(KeyboardInterrupt):
        rotation.rotate(rotating, crash_after_70)

    env = {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file),
           "TONGDAI_DATA_KEYS": f"{NEW},{OLD}"}
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "keys", "rotate"], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "resumed at customers 51" in out.stdout
    assert f"{USERS} customers, {USERS} conversations" in out.stdout

    # every stored value is now under k2 (directly, or through the customer's own key) ...
    names = [hub.redis.hget(hub.keys.customer(str(c)), "name") for c in range(1, USERS + 1)]
    assert all(rotating.keyring.key_id_of(n).startswith("s.") for n in names)  # own keys
    wrapped = hub.redis.hvals(hub.keys.subject_keys())  # ... which are wrapped by the data key
    assert len(wrapped) == USERS and {rotating.keyring.key_id_of(w) for w in wrapped} == {"k2"}
    # ... so the old key can be removed and nothing becomes unreadable
    only_new = hub_with(NEW, redis_url, config_file)
    for c in range(1, USERS + 1):
        cust = store.get_customer(only_new, str(c))
        n = int(cust.name.removeprefix("Khách "))  # ids follow processing, not update order
        assert cust.identifiers[0]["value"] == f"+8490{n:07d}"  # E.164
        (msg,) = store.message_page(only_new, cust.current_conversation_id, None, 10).items
        assert msg.attachments[0].meta["phone_number"] == f"8490{n:07d}"
    # a second run has nothing left to do
    again = rotation.rotate(rotating)
    assert again.rewritten == 0 and again.resumed_from is None
