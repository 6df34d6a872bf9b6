"""Backups and restores (issue #18): a running hub copied under traffic and restored whole and
readable; damaged backups and non-empty targets refused; erased customers stay erased;
retention; one scheduled backup however many schedulers run."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.conftest import start_redis, write_config
from tests.helpers import auth, drain_all, post, tg_update
from tongdai.core.config import load_config
from tongdai.core.crypto import load_keyring
from tongdai.core.hub import Hub, connect
from tongdai.core.pipeline import rawlog, store
from tongdai.core.redis_server import EmbeddedRedis
from tongdai.core.workspace import backup, backup_restore, backup_schedule, privacy

SEALED = "security:\n  encrypt_message_text: true\n"


@pytest.fixture
def fresh_redis(tmp_path):
    """A second, empty redis-server: where a backup is restored."""
    proc, url = start_redis(tmp_path)
    yield url
    proc.terminate()
    proc.wait(10)


def _sealed_hub(hub_fixture_env, config_path: Path, url: str) -> Hub:
    h = Hub(load_config(str(config_path)), connect(url), load_keyring(Path(".")))
    rawlog.ensure_groups(h)
    return h


def _texts(hub: Hub) -> dict[tuple[str, str], str]:
    """Every message of every conversation, decrypted: (conversation, message) → text."""
    out = {}
    for key in hub.redis.scan_iter(match=f"{hub.keys.prefix}conv:*:messages"):
        conv = key.decode().split(":")[-2]
        cursor = None
        while True:
            page = store.message_page(hub, conv, cursor, 100)
            out.update({(conv, m.id): m.text for m in page.items})
            cursor = page.next_cursor
            if not cursor:
                break
    return out


def _customer_ids(hub: Hub) -> list[str]:
    return sorted(k.decode().split(":")[-1] for k in
                  hub.redis.scan_iter(match=f"{hub.keys.prefix}customer:*")
                  if k.decode().split(":")[-1].isdigit())


def test_a_running_hub_backed_up_under_traffic_restores_whole_and_readable(tmp_path, monkeypatch):
    """The embedded Redis (RDB): messages keep arriving while the backup runs; the restored
    data dir holds exactly what the manifest counts, every message decrypts to what the live
    hub holds, and everything stored before the backup began is there."""
    from tongdai.webhooks import create_app

    cfg = write_config(tmp_path / "tongdai.yaml", extra=SEALED)
    monkeypatch.setenv("TONGDAI_CONFIG", str(cfg))
    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "var"))
    live = EmbeddedRedis(tmp_path / "live", appendfsync="everysec")
    live.start()
    try:
        hub = _sealed_hub(None, cfg, live.url)
        client = create_app(hub, {"TESTING": True}).test_client()
        for i in range(1, 41):  # 40 customers, 40 conversations
            post(client, tg_update(i, 1000 + i, 1, f"nạp thẻ 100k chưa nhận xu #{i}",
                                   first_name=f"Khách {i}"))
        drain_all(hub)
        before = _texts(hub)
        stop, n = threading.Event(), [100]

        def traffic() -> None:  # another hub (another process, in spirit) ingesting
            h2 = _sealed_hub(None, cfg, live.url)
            c2 = create_app(h2, {"TESTING": True}).test_client()
            while not stop.is_set():
                n[0] += 1
                post(c2, tg_update(n[0], 1000 + n[0] % 60, n[0], f"充值未到账 {n[0]}"))
                drain_all(h2)

        t = threading.Thread(target=traffic)
        t.start()
        try:
            manifest = backup.take(hub, tmp_path / "bk")
        finally:
            stop.set()
            t.join()
        assert manifest["mode"] == "rdb"
        live_texts = _texts(hub)
    finally:
        live.stop()
    assert manifest["counts"]["messages"] >= len(before)
    report = backup_restore.restore(tmp_path / "bk", load_config(str(cfg)),
                                    load_keyring(Path(".")), target_dir=tmp_path / "restored")
    assert report["counts"]["messages"] == manifest["counts"]["messages"]
    again = EmbeddedRedis(tmp_path / "restored")  # as `tongdai up --data-dir` would start it
    again.start()
    try:
        restored = _texts(_sealed_hub(None, cfg, again.url))
    finally:
        again.stop()
    assert len(restored) == manifest["counts"]["messages"]
    assert before.items() <= restored.items()  # everything stored before the backup began
    assert all(live_texts[k] == v for k, v in restored.items())  # and nothing made up
    assert restored[("1", min(m for c, m in restored if c == "1"))].startswith("nạp thẻ")


def _traffic(client, hub, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        post(client, tg_update(i, 500 + i % 7, i, f"đơn #{i} giao chưa", first_name=f"K{i % 7}"))
    drain_all(hub)


def _backup_metrics(client, token: str) -> list[str]:
    r = client.get("/metrics", headers=auth(token))
    return [line for line in r.get_data(as_text=True).splitlines()
            if line.startswith("tongdai_backup_")]


def test_logical_backup_of_a_redis_url_restores_into_an_empty_redis(client, hub, tmp_path,
                                                                    fresh_redis, admin_token):
    _traffic(client, hub, 30)
    assert _backup_metrics(client, admin_token) == ["tongdai_backup_stale 0.0"]  # none yet
    manifest = backup.take(hub, tmp_path / "bk")
    assert manifest["mode"] == "logical" and manifest["counts"]["conversations"] == 7
    assert manifest["with_keys"] is False and not (tmp_path / "bk" / "keys").exists()
    shown = client.get("/healthz").json["backup"]  # the last good backup, and its age
    assert shown["dir"] == str((tmp_path / "bk").resolve()) and shown["stale"] is False
    age, stale = _backup_metrics(client, admin_token)  # and for Prometheus
    assert age.startswith("tongdai_backup_age_seconds ") and float(age.split()[1]) < 60
    assert stale == "tongdai_backup_stale 0.0"
    report = backup_restore.restore(tmp_path / "bk", hub.config, hub.keyring,
                                    redis_url=fresh_redis, blobs_dir=tmp_path / "blobs2")
    assert report["counts"]["messages"] == 30
    restored = Hub(hub.config, connect(fresh_redis), hub.keyring)
    assert _texts(restored) == _texts(hub)
    names = {store.get_customer(restored, c).name for c in _customer_ids(restored)}
    assert names == {f"K{i}" for i in range(7)}
    # the restored hub takes new traffic where the old one stopped (counters came along)
    assert restored.redis.get(restored.keys.seq("message")) == hub.redis.get(
        hub.keys.seq("message"))


def test_restore_refuses_a_non_empty_target(client, hub, tmp_path, redis_url):
    _traffic(client, hub, 3)
    backup.take(hub, tmp_path / "bk")
    used = tmp_path / "used"
    used.mkdir()
    (used / "appendonly.aof").write_text("x")
    with pytest.raises(backup.BackupError, match="is not empty .*appendonly.aof"):
        backup_restore.restore(tmp_path / "bk", hub.config, hub.keyring, target_dir=used)
    keys_before = hub.redis.dbsize()
    with pytest.raises(backup.BackupError, match=f"holds {keys_before} keys"):
        backup_restore.restore(tmp_path / "bk", hub.config, hub.keyring, redis_url=redis_url)
    assert hub.redis.dbsize() == keys_before


def test_a_damaged_backup_is_refused_before_anything_is_written(client, hub, tmp_path,
                                                                fresh_redis):
    _traffic(client, hub, 5)
    backup.take(hub, tmp_path / "bk")
    dump = tmp_path / "bk" / backup.DUMP
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(backup.BackupError, match="damaged: redis/keys.dump has sha256"):
        backup_restore.restore(tmp_path / "bk", hub.config, hub.keyring, redis_url=fresh_redis)
    assert redis.Redis.from_url(fresh_redis).dbsize() == 0


def test_restore_with_other_keys_says_which_key_is_missing(client, hub, tmp_path, fresh_redis,
                                                           monkeypatch):
    from tongdai.core.crypto import generate

    _traffic(client, hub, 3)
    backup.take(hub, tmp_path / "bk")
    other = generate()
    monkeypatch.setenv("TONGDAI_DATA_KEYS", other["TONGDAI_DATA_KEYS"])
    with pytest.raises(backup.BackupError, match="written under data key 'ktest'"):
        backup_restore.restore(tmp_path / "bk", hub.config, load_keyring(Path(".")),
                               redis_url=fresh_redis)
    monkeypatch.setenv("TONGDAI_INDEX_KEY", other["TONGDAI_INDEX_KEY"])
    with pytest.raises(backup.BackupError, match="TONGDAI_INDEX_KEY is not the index key"):
        backup_restore.restore(tmp_path / "bk", hub.config, load_keyring(Path(".")),
                               redis_url=fresh_redis)


def _restore_into(fresh_url: str, src: Path, hub: Hub, ledgers=()) -> Hub:
    redis.Redis.from_url(fresh_url).flushdb()
    backup_restore.restore(src, hub.config, hub.keyring, redis_url=fresh_url, ledgers=ledgers)
    restored = Hub(hub.config, connect(fresh_url), hub.keyring)
    return restored


def test_a_customer_erased_after_a_backup_stays_erased_when_it_is_restored(client, hub, tmp_path,
                                                                           fresh_redis):
    """The backup holds the erased customer's identity keys (wrapped by the data keys, which
    do not change): restored bare, they read again. The erasure record — beside the backups,
    and in every newer backup — makes the restore erase them again."""
    root = backup.backups_root(hub)
    root.mkdir(parents=True)
    post(client, tg_update(1, 901, 1, "Tôi là Lan, sđt 0912345678", first_name="Lan"))
    post(client, tg_update(2, 902, 1, "Shop ơi", first_name="Minh"))
    drain_all(hub)
    lan, minh = _customer_ids(hub)
    old = root / "tongdai-20261201T000000Z"
    backup.take(hub, old)
    privacy.erase_customer(hub, lan, "test")
    assert (root / backup.LEDGER).exists()

    # bare: the same backup alone, no record of the erasure anywhere → Lan reads again
    alone = tmp_path / "elsewhere" / old.name
    shutil.copytree(old, alone)
    bare = _restore_into(fresh_redis, alone, hub)
    assert store.get_customer(bare, lan).name == "Lan"

    # from the backups' directory: the ledger beside them erases her again
    restored = _restore_into(fresh_redis, old, hub)
    assert store.get_customer(restored, lan).name is None
    assert store.get_customer(restored, minh).name == "Minh"
    assert not restored.redis.exists(restored.keys.customer_conversations(lan))
    assert [t for t in _texts(restored).values()] == ["Shop ơi"]
    assert not any(k.decode()[2:18] in restored.redis.hget(restored.keys.erasures(),
                                                           lan).decode()
                   for k in restored.redis.hkeys(restored.keys.subject_keys()))

    # a newer backup carries the record too (the ledger file lost)
    (root / backup.LEDGER).unlink()
    backup.take(hub, root / "tongdai-20261202T000000Z")
    assert store.get_customer(_restore_into(fresh_redis, old, hub), lan).name is None


def test_retention_keeps_the_newest_of_each_day_and_week():
    t0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # a Friday
    stamps = [t0 - timedelta(hours=12 * i) for i in range(40)]  # twice a day for 20 days
    kept = backup_schedule.keep(stamps, keep_daily=3, keep_weekly=2)
    days = sorted({t.date() for t in kept})
    assert t0 in kept and len(kept) == 4
    assert days[-3:] == [t0.date() - timedelta(days=d) for d in (2, 1, 0)]
    assert max(t for t in stamps if t.isocalendar()[1] == t0.isocalendar()[1] - 1) in kept
    assert backup_schedule.keep([], 7, 4) == set()


def test_prune_removes_what_retention_does_not_keep(tmp_path):
    for name in ("tongdai-20261204T030000Z", "tongdai-20261203T030000Z",
                 "tongdai-20261203T150000Z", "tongdai-20261120T030000Z", "not-a-backup"):
        (tmp_path / name).mkdir()
        (tmp_path / name / backup.MANIFEST).write_text("{}")
    removed = backup_schedule.prune(tmp_path, keep_daily=2, keep_weekly=1)
    assert sorted(p.name for p in removed) == ["tongdai-20261120T030000Z",
                                               "tongdai-20261203T030000Z"]
    assert (tmp_path / "not-a-backup").exists()


def test_two_schedulers_take_one_backup(hub, tmp_path, redis_url):
    """Both schedulers' ticks find it due on Redis's clock; one takes the claim and the
    backup, the other nothing, and neither again until it is due; /healthz shows its age."""
    cfg = write_config(tmp_path / "sched.yaml",
                       extra="backup:\n  enabled: true\n  every: 1h\n  max_age: 2h\n")
    a, b = (Hub(load_config(str(cfg)), connect(redis_url), hub.keyring) for _ in range(2))
    owners: list[str | None] = []
    barrier = threading.Barrier(2)

    def tick(h: Hub) -> None:
        barrier.wait()
        owners.append(backup_schedule.claim(h))

    threads = [threading.Thread(target=tick, args=(h,)) for h in (a, b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    mine = [o for o in owners if o]
    assert len(mine) == 1
    winner = a if a.redis.get(a.keys.backup_claim()).decode() == mine[0] else b
    dest = backup_schedule.run(winner, mine[0])
    assert dest is not None and (dest / backup.MANIFEST).exists()
    assert backup_schedule.claim(a) is None and backup_schedule.claim(b) is None
    assert list(backup.backups_root(a).glob("tongdai-*")) == [dest]
    health = backup_schedule.health(a)
    assert health["stale"] is False and health["age_s"] < 60
    # an hour and more later (on Redis's clock, as recorded): due again, for one of them
    a.redis.hset(a.keys.backup_last(), "at", int(health["last_at"]) - 3600_000 - 61_000)
    assert backup_schedule.health(a)["stale"] is False  # within max_age (2 h)
    owner = backup_schedule.claim(b)
    assert owner and backup_schedule.claim(a) is None
    backup_schedule.release(b, owner)
    a.redis.hset(a.keys.backup_last(), "at", int(health["last_at"]) - 3 * 3600_000)
    assert backup_schedule.health(a)["stale"] is True


def test_backup_config_mistakes_name_the_key_and_fix(tmp_path):
    from tongdai.core.config import ConfigInvalid

    cfg = write_config(tmp_path / "t.yaml", extra="backup:\n  every: 1d\n  max_age: 2h\n")
    with pytest.raises(ConfigInvalid) as err:
        load_config(str(cfg))
    assert "backup" in str(err.value) and "make max_age longer than every" in str(err.value)
    cfg = write_config(tmp_path / "t.yaml", extra="backup:\n  keep_dialy: 3\n")
    with pytest.raises(ConfigInvalid, match="backup.keep_dialy"):
        load_config(str(cfg))
