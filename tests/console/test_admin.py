"""The console's admin area over its API (webhooks/api/channels.py, /admin/overview): secrets
never leave masked-or-better, a changed secret or a new channel is refused with the key named
and the file untouched when invalid, and a running process (a second Hub on the same file and
Redis, as a worker is) uses the change after its next look, no restart; agents never see it.
"""

from __future__ import annotations

import pytest

from tests.conftest import SECRET, TOKEN, write_config
from tests.console.conftest import TEAMS, log_in
from tests.staff import create_people
from tongdai.core.hub import Hub
from tongdai.core.pipeline import channel_admin
from tongdai.core.workspace import audit

NEW_TOKEN = "987654321:AAnew-rotated-token-value_XYZ9"


@pytest.fixture
def config_file(tmp_path, tg_fake):
    path = write_config(tmp_path / "tongdai.yaml", api_base=tg_fake.base_url, extra=TEAMS)
    text = path.read_text(encoding="utf-8")
    return path.write_text("# ops: keep this note\n" + text.replace(
        "    adapter: telegram\n", "    adapter: telegram  # the shop's bot\n"), "utf-8") and path


@pytest.fixture
def admin(hub, client):
    toks = create_people(hub)
    return {"Authorization": f"Bearer {toks['admin']}"}, toks


def _worker() -> Hub:
    """Another process of the hub (as `tongdai worker` builds it), started before the edit."""
    return Hub.from_env()


def test_secrets_are_masked_rotated_sealed_and_used_by_a_running_worker(hub, client, admin,
                                                                           config_file, tg_fake):
    headers, _ = admin
    worker = _worker()
    r = client.get("/api/v1/admin/channels", headers=headers)
    assert r.status_code == 200
    assert TOKEN not in r.get_data(as_text=True) and SECRET not in r.get_data(as_text=True)
    (ch,) = r.json["items"]
    secrets = {s["key"]: s for s in ch["secrets"]}
    assert secrets["bot_token"] == {"key": "bot_token", "set": True, "hint": "••••" + TOKEN[-4:],
                                    "source": {"file": True}}
    assert secrets["secret_token"]["hint"] == "••••"  # too short to spare four characters
    assert ch["settings"] == {"api_base": tg_fake.base_url} and ch["disabled"] is None
    check = client.post("/api/v1/admin/channels/tg-test/check", headers=headers)
    assert check.json["ok"] is True and "getMe" in check.json["lines"][0]
    assert check.json["webhook"].startswith("not registered")
    assert TOKEN not in check.get_data(as_text=True)

    r = client.put("/api/v1/admin/channels/tg-test/secrets/bot_token", headers=headers,
                   json={"value": NEW_TOKEN})
    assert r.status_code == 200, r.json
    assert NEW_TOKEN not in r.get_data(as_text=True)
    assert r.json["applied"] == "applied"
    assert r.json["secret"] == {"key": "bot_token", "set": True, "hint": "••••" + NEW_TOKEN[-4:],
                                "source": {"sealed": True}}
    text = config_file.read_text(encoding="utf-8")
    assert NEW_TOKEN not in text and 'bot_token: "enc:' in text  # its quotes kept too
    assert text.startswith("# ops: keep this note\n") and "# the shop's bot" in text
    # this process runs it at once; the worker at its next look, without a restart
    assert hub.adapter("tg-test").settings.bot_token.get_secret_value() == NEW_TOKEN
    assert worker.adapter("tg-test").settings.bot_token.get_secret_value() == TOKEN
    assert worker.watch.poll(force=True) == "applied"
    assert worker.adapter("tg-test").settings.bot_token.get_secret_value() == NEW_TOKEN
    listed = client.get("/api/v1/admin/channels", headers=headers).get_data(as_text=True)
    assert NEW_TOKEN not in listed
    check = client.post("/api/v1/admin/channels/tg-test/check", headers=headers)
    assert check.json["ok"] is False  # the fake Bot API knows only the old token: it is in use
    assert NEW_TOKEN not in check.get_data(as_text=True)
    (entry,), _ = audit.entries(hub, action="channel.secret_set")
    assert entry["details"] == {"key": "bot_token"} and entry["actor"] == "admin"

    # an environment reference instead: written as such, shown by its name
    r = client.put("/api/v1/admin/channels/tg-test/secrets/secret_token", headers=headers,
                   json={"value": "${TONGDAI_TEST_TG_SECRET}"})
    assert r.status_code == 400  # not set in this process: refused, naming the key
    assert "channels[tg-test].settings.secret_token" in r.json["error"]["message"]
    assert "TONGDAI_TEST_TG_SECRET" in r.json["error"]["message"]


def test_a_bad_value_is_refused_naming_the_key_and_nothing_is_written(hub, client, admin,
                                                                       config_file, monkeypatch):
    headers, _ = admin
    before = config_file.read_bytes()
    r = client.put("/api/v1/admin/channels/tg-test/secrets/bot_token", headers=headers,
                   json={"value": "not a token"})
    assert r.status_code == 400
    err = r.json["error"]
    assert err["reason"] == "config_refused"
    assert err["params"]["key"] == "channels[tg-test].settings.bot_token"
    assert "BotFather" in err["params"]["fix"] + err["params"]["problem"]
    assert "not a token" not in r.get_data(as_text=True)
    r = client.post("/api/v1/admin/channels", headers={**headers, "Idempotency-Key": "1"}, json={
        "id": "tg-shop", "adapter": "telegram", "settings": {"bot_token": "${SHOP_TG_TOKEN}",
                                                           "secret_token": "abc", "api_bse": "x"}})
    assert r.status_code == 400 and r.json["error"]["params"]["key"].startswith(
        "channels[tg-shop].settings")
    r = client.put("/api/v1/admin/channels/tg-test/secrets/api_base", headers=headers,
                   json={"value": "x"})
    assert r.status_code == 404  # not a secret
    assert config_file.read_bytes() == before
    assert hub.config.version == Hub.from_env().config.version

    # a valid one: added, running here and in a worker, its secrets sealed; then removed
    worker = _worker()
    monkeypatch.setenv("SHOP_TG_TOKEN", NEW_TOKEN)
    add = {"id": "tg-shop", "adapter": "telegram",
           "settings": {"bot_token": "${SHOP_TG_TOKEN}", "secret_token": "shop-secret-typed-in"}}
    once = {**headers, "Idempotency-Key": "k2"}
    r = client.post("/api/v1/admin/channels", headers=once, json=add)
    assert r.status_code == 201, r.json
    again = client.post("/api/v1/admin/channels", headers=once, json=add)  # a retry: same answer
    assert again.status_code == 201 and again.json == r.json
    text = config_file.read_text(encoding="utf-8")
    assert "${SHOP_TG_TOKEN}" in text and "shop-secret-typed-in" not in text
    assert worker.watch.poll(force=True) == "applied"
    assert worker.adapter("tg-shop").settings.secret_token.get_secret_value() == \
        "shop-secret-typed-in"
    items = client.get("/api/v1/admin/channels", headers=headers).json["items"]
    shop = {s["key"]: s["source"] for s in items[1]["secrets"]}
    assert shop == {"bot_token": {"env": "SHOP_TG_TOKEN"}, "secret_token": {"sealed": True}}
    assert client.delete("/api/v1/admin/channels/tg-shop", headers=headers).status_code == 200
    assert worker.watch.poll(force=True) == "applied" and "tg-shop" not in worker.adapters
    assert "# ops: keep this note" in config_file.read_text(encoding="utf-8")


def test_disable_enable_overview_and_only_admins(hub, client, admin):
    headers, toks = admin
    r = client.post("/api/v1/admin/channels/tg-test/disable", headers=headers,
                    json={"why": "đổi bot"})
    assert r.status_code == 200 and r.json["changed"] is True
    assert channel_admin.health(hub, ["tg-test"])["tg-test"].disabled["why"] == "đổi bot"
    assert client.get("/api/v1/admin/channels", headers=headers).json["items"][0][
        "disabled"]["by"] == "admin"
    assert client.post("/api/v1/admin/channels/tg-test/enable", headers=headers).json[
        "changed"] is True
    assert [e["action"] for e in audit.entries(hub, action="channel.")[0]] == [
        "channel.enabled", "channel.disabled"]
    o = client.get("/api/v1/admin/overview", headers=headers).json
    assert o["routing"]["rules"][0]["queue"] == "billing"
    assert o["config"]["problems"] == [] and o["sla"]["first_response"] == 900.0
    agent = {"Authorization": f"Bearer {toks['an']}"}
    assert client.get("/api/v1/admin/channels", headers=agent).status_code == 403

    log_in(client, "an")  # an agent: no link, and the page refuses
    assert 'id="admin-link"' not in client.get("/console").get_data(as_text=True)
    assert client.get("/console/admin").status_code == 403
    client.delete_cookie("td_session")
    log_in(client, "admin")
    assert 'id="admin-link"' in client.get("/console").get_data(as_text=True)
    page = client.get("/console/admin")
    assert page.status_code == 200 and b'id="channels"' in page.data


def test_a_sealed_secret_that_does_not_open_is_named_at_load(config_file):
    from tongdai.core.config import ConfigInvalid, load_config

    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(text.replace(f'"{TOKEN}"', '"enc:AQVrbm9wZQ=="'), "utf-8")
    with pytest.raises(ConfigInvalid) as e:
        load_config(str(config_file))
    (err,) = e.value.errors
    assert err.key == "channels[tg-test].settings.bot_token"
    assert "does not open" in err.problem and "TONGDAI_DATA_KEYS" in err.fix


@pytest.fixture
def zalo_config(tmp_path, monkeypatch, graph, zalo):
    from tests.helpers import fb_and_zalo_channels

    path = write_config(tmp_path / "tongdai.yaml", extra=fb_and_zalo_channels(graph, zalo) + TEAMS)
    monkeypatch.setenv("TONGDAI_CONFIG", str(path))
    return path


def test_a_zalo_token_set_anew_replaces_the_stored_pairs_half(redis_client, redis_url,
                                                              zalo_config, monkeypatch, tmp_path):
    from tests.fakes.zalo_api import ACCESS_TOKEN, REFRESH_TOKEN
    from tongdai.core.credentials import RedisTokenStore
    from tongdai.webhooks import create_app

    monkeypatch.setenv("TONGDAI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    h = Hub.from_env()
    client = create_app(h, {"TESTING": True}).test_client()
    headers = {"Authorization": f"Bearer {create_people(h)['admin']}"}
    store = RedisTokenStore(h, "zalo-test")
    store.save({"access_token": "AT-revoked-by-zalo", "refresh_token": "RT-already-used",
                "expires_in": "90000"})  # a pair the OA's owner has since revoked
    check = client.post("/api/v1/admin/channels/zalo-test/check", headers=headers)
    assert check.json["ok"] is False
    r = client.put("/api/v1/admin/channels/zalo-test/secrets/access_token", headers=headers,
                   json={"value": ACCESS_TOKEN})
    assert r.status_code == 200 and ACCESS_TOKEN not in r.get_data(as_text=True)
    assert store.current()["access_token"] == ACCESS_TOKEN
    assert store.current()["refresh_token"] == "RT-already-used"  # the other half: untouched
    assert "access_expires_at" not in store.current()
    check = client.post("/api/v1/admin/channels/zalo-test/check", headers=headers)
    assert check.json["ok"] is True, check.json
    assert ACCESS_TOKEN not in check.get_data(as_text=True)
    assert REFRESH_TOKEN not in client.get("/api/v1/admin/channels",
                                           headers=headers).get_data(as_text=True)


def test_a_secret_left_at_the_shipped_placeholder_is_not_said_to_come_from_env(
        tmp_path, monkeypatch):
    # config/tongdai.yaml ships `${TELEGRAM_BOT_TOKEN:-123456789:demo-token-...}`: with the
    # variable unset (or empty) the placeholder runs, and the admin page must say so
    from tongdai.core import config_edit

    path = tmp_path / "tongdai.yaml"
    path.write_text("channels:\n  - id: tg-demo\n    adapter: telegram\n    settings:\n"
                    "      bot_token: ${TD_TEST_BOT_TOKEN:-123456789:demo-token}\n"
                    "      secret_token: ${TD_TEST_SECRET}\n", encoding="utf-8")
    keys = ["bot_token", "secret_token"]
    monkeypatch.delenv("TD_TEST_BOT_TOKEN", raising=False)
    monkeypatch.setenv("TD_TEST_SECRET", "s")
    assert config_edit.secret_sources("tg-demo", keys, str(path)) == {
        "bot_token": {"env": "TD_TEST_BOT_TOKEN", "default": True},
        "secret_token": {"env": "TD_TEST_SECRET"}}
    monkeypatch.setenv("TD_TEST_BOT_TOKEN", "")
    assert config_edit.secret_sources("tg-demo", keys, str(path))["bot_token"]["default"]
    monkeypatch.setenv("TD_TEST_BOT_TOKEN", "42:real")
    assert config_edit.secret_sources("tg-demo", keys, str(path))["bot_token"] == {
        "env": "TD_TEST_BOT_TOKEN"}
