"""`tongdai channels list | check | disable | enable`, against a real Redis and the platforms'
fake servers: a disabled channel sends nothing and loses nothing; health counts what happened;
credentials are checked with the platform, accepted and refused."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import TOKEN, write_config
from tests.fakes import zalo_api
from tests.fakes.facebook_graph import DEFAULT_APP_SECRET, DEFAULT_TOKEN, FakeGraphAPI
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import auth, drain_all, post, run_outbound, tg_update
from tongdai.core.cli import main


@pytest.fixture
def fakes():
    with FakeTelegramAPI(TOKEN) as tg, FakeGraphAPI() as fb, zalo_api.FakeZaloAPI() as zl:
        yield tg, fb, zl


@pytest.fixture
def config_file(tmp_path, fakes):
    tg, fb, zl = fakes
    return write_config(tmp_path / "tongdai.yaml", api_base=tg.base_url, extra=f"""
  - id: fb-shop
    adapter: facebook
    settings:
      page_id: "104857600123456"
      page_access_token: {DEFAULT_TOKEN}
      app_secret: {DEFAULT_APP_SECRET}
      verify_token: vt-42
      graph_base: {fb.base_url}
  - id: zalo-oa
    adapter: zalo
    settings:
      oa_id: "{zalo_api.OA_ID}"
      app_id: "{zalo_api.APP_ID}"
      oa_secret_key: oa-Secret_key-7781
      app_secret: {zalo_api.APP_SECRET}
      access_token: {zalo_api.ACCESS_TOKEN}
      refresh_token: {zalo_api.REFRESH_TOKEN}
      api_base: {zl.base_url}
      oauth_base: {zl.base_url}
""")


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _reply(client, token, conv, text, key, channel=None):
    body = {"text": text} | ({"channel_id": channel} if channel else {})
    return client.post(f"/api/v1/conversations/{conv}/messages", json=body,
                       headers={**auth(token), "Idempotency-Key": key})


def _texts(client, token, conv, direction):
    items = client.get(f"/api/v1/conversations/{conv}/messages",
                       headers=auth(token)).json["items"]
    return sorted((m["text"], m["status"]) for m in items if m["direction"] == direction)


def test_a_disabled_channel_stores_everything_and_sends_nothing_until_enabled(
        client, hub, admin_token, fakes):
    tg = fakes[0]
    post(client, tg_update(1, 555, 1, "Shop ơi"))
    drain_all(hub)
    (conv,) = [c["id"] for c in client.get("/api/v1/conversations",
                                           headers=auth(admin_token)).json["items"]]
    assert _reply(client, admin_token, conv, "queued before", "r1").status_code == 201

    r = cli("channels", "disable", "tg-test", "--why", "bot token leaked, rotating")
    assert r.exit_code == 0 and "disabled" in r.output
    assert "already disabled" in cli("channels", "disable", "tg-test").output

    # customers keep writing: every message is stored
    for i in range(2, 5):
        assert post(client, tg_update(i, 555, i, f"còn đó không {i}")).status_code == 200
    drain_all(hub)
    assert [t for t, _ in _texts(client, admin_token, conv, "in")] == [
        "Shop ơi", "còn đó không 2", "còn đó không 3", "còn đó không 4"]
    # a new reply is refused with the reason; the picker shows the channel unreachable
    r = _reply(client, admin_token, conv, "during", "r2")
    assert r.status_code == 409
    assert "an admin disabled this channel: bot token leaked" in r.json["error"]["message"]
    (state,) = client.get(f"/api/v1/conversations/{conv}/channels",
                          headers=auth(admin_token)).json["items"]
    assert (state["reachable"], state["reason_code"]) == (False, "disabled")
    # the reply queued before is held, not sent, not failed
    run_outbound(hub, wait_s=0)
    assert [p.get("text") for p in tg.sent()] == []
    assert _texts(client, admin_token, conv, "out") == [("queued before", "queued")]

    assert "enabled" in cli("channels", "enable", "tg-test").output
    run_outbound(hub, wait_s=0)
    assert _reply(client, admin_token, conv, "after", "r3").status_code == 201
    run_outbound(hub, wait_s=3)  # Telegram's one message a second per chat
    assert [p.get("text") for p in tg.sent()] == [
        "queued before", "after"]
    assert _texts(client, admin_token, conv, "out") == [("after", "sent"),
                                                        ("queued before", "sent")]
    assert "was not disabled" in cli("channels", "enable", "tg-test").output


def _blocks(out: str) -> dict[str, str]:
    """`channels list` output by channel: a line per channel, its details indented below."""
    blocks: dict[str, str] = {}
    for line in out.splitlines():
        if line and not line.startswith(" "):
            current = line.split()[0]
        blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


def test_list_shows_health_webhook_and_token_expiry(client, hub, admin_token, fakes):
    tg, _fb, zl = fakes
    post(client, tg_update(1, 555, 1, "xin chào"))
    post(client, b'{"update_id": 2, "message": "not an object"}')  # signed, unreadable
    drain_all(hub)
    (conv,) = [c["id"] for c in client.get("/api/v1/conversations",
                                           headers=auth(admin_token)).json["items"]]
    _reply(client, admin_token, conv, "dạ", "r1")
    tg.fail_next("sendMessage", 400, description="Bad Request: chat not found")  # final
    _reply(client, admin_token, conv, "dạ 2", "r2")
    run_outbound(hub, wait_s=3)  # the second waits for Telegram's per-chat second
    cli("channels", "disable", "fb-shop", "--why", "page review")
    assert cli("channels", "zalo", "authorize", "zalo-oa",
               "--code", zl.issue_code()).exit_code == 0

    out = cli("channels", "list").output
    blocks = _blocks(out)
    tg_block = blocks["tg-test"]
    assert "enabled" in tg_block and "s ago" in tg_block
    assert "2 events, 1 error, 1 sent, 1 send failure" in tg_block
    assert "webhook: not registered: tongdai channels telegram set-webhook tg-test" in tg_block
    assert "DISABLED by" in out and "page review" in out
    zalo_block = blocks["zalo-oa"]
    assert "last event never" in zalo_block
    assert "access token expires" in zalo_block and "(in 25 h)" in zalo_block
    assert "refresh token expires" in zalo_block and "(in 90 d)" in zalo_block

    cli("channels", "telegram", "set-webhook", "tg-test", "--url", "https://hub.example.vn")
    out = cli("channels", "list").output
    assert "webhook: registered at https://hub.example.vn/webhooks/tg-test (0 pending)" in out
    assert "webhook" not in cli("channels", "list", "--offline").output


def test_check_asks_each_platform_and_says_what_it_checked(hub, fakes):
    tg, fb, zl = fakes
    r = cli("channels", "check", "tg-test")
    assert r.exit_code == 0, r.output
    assert "settings: valid (telegram adapter" in r.output
    assert "credentials: accepted — getMe: the token is bot @fake_shop_bot" in r.output
    r = cli("channels", "check", "fb-shop")
    assert "Page Shop Thời Trang Test (104857600123456)" in r.output and r.exit_code == 0
    r = cli("channels", "check", "zalo-oa")
    assert f"OA Shop Test OA ({zalo_api.OA_ID})" in r.output and r.exit_code == 0

    tg.token = "999:another-bot"  # the bot token was revoked in BotFather
    r = CliRunner().invoke(main, ["channels", "check", "tg-test"])
    assert r.exit_code == 1 and "credentials: REFUSED" in r.output
    assert "the bot token was rejected; check bot_token" in r.output
    fb.token = "EAAsomeOtherToken0123456789"  # the Page token was regenerated elsewhere
    r = CliRunner().invoke(main, ["channels", "check", "fb-shop"])
    assert r.exit_code == 1 and "Page access token was rejected" in r.output
    fb.token, fb.page = DEFAULT_TOKEN, ("200000000000001", "Another Page")
    r = CliRunner().invoke(main, ["channels", "check", "fb-shop"])
    assert r.exit_code == 1 and "belongs to 200000000000001, not to page_id" in r.output
    zl.expire_access_token()
    zl.refresh_token = None  # and the refresh token is spent: re-authorization needed
    r = CliRunner().invoke(main, ["channels", "check", "zalo-oa"])
    assert r.exit_code == 1 and "an OA admin must authorize the app again" in r.output
    assert TOKEN not in r.output and zalo_api.REFRESH_TOKEN not in r.output


def test_check_of_invalid_settings_names_file_key_and_fix(tmp_path, monkeypatch, redis_url):
    path = write_config(tmp_path / "bad.yaml", extra="""
  - id: tg-bad
    adapter: telegram
    settings: {bot_token: "not a token", secret_token: "s3cret_s3cret"}
""")
    monkeypatch.setenv("TONGDAI_CONFIG", str(path))
    r = CliRunner().invoke(main, ["channels", "check", "tg-bad"])
    assert r.exit_code == 2
    assert f"{path}: channels[tg-bad].settings.bot_token:" in r.output and "Fix:" in r.output
