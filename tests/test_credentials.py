"""Rotating tokens: two workers meeting an expired token at once refresh it exactly once."""

from __future__ import annotations

import multiprocessing
import time

from tongdai.core.credentials import RedisTokenStore
from tongdai.core.hub import Hub


def _rotate_in_process(url: str, config: str, used: str, results) -> None:
    import os

    os.environ["REDIS_URL"], os.environ["TONGDAI_CONFIG"] = url, config
    hub = Hub.from_env()
    store = RedisTokenStore(hub, "tg-test")

    def refresh(refresh_token: str) -> dict:
        calls = int(hub.redis.incr("test:refresh-calls"))
        time.sleep(0.3)  # a slow OAuth server: the other worker arrives meanwhile
        return {"access_token": f"access-{calls}", "refresh_token": f"refresh-{calls}",
                "burnt": refresh_token}

    results.put(store.rotate(used, refresh)["access_token"])


def test_parallel_rotation_refreshes_once_and_both_get_the_new_pair(hub, redis_url,
                                                                    config_file):
    RedisTokenStore(hub, "tg-test").save({"access_token": "old", "refresh_token": "r0"})
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rotate_in_process,
                         args=(redis_url, str(config_file), "old", results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
    assert hub.redis.get("test:refresh-calls") == b"1"
    assert got == ["access-1", "access-1"]
    stored = RedisTokenStore(hub, "tg-test").current()
    assert stored["access_token"] == "access-1" and stored["refresh_token"] == "refresh-1"
    assert not hub.redis.exists(hub.keys.credentials_lock("tg-test"))  # released by its owner
