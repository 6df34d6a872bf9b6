"""`tongdai channels add / remove` edit the config file safely: comments kept, the result
checked by the config loader before it replaces the file, an invalid one refused with file,
key and fix and the file unchanged; a running process picks the change up by its hot reload."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import SECRET, TOKEN, write_config
from tongdai.core.cli import main
from tongdai.core.config import load_config

COMMENTED = """
# Shop ABC's hub — edited by hand and by `tongdai channels add`
channels:
  # the main bot (BotFather: @shopabc_bot)
  - id: tg-test
    adapter: telegram
    settings:
      bot_token: "{token}"   # rotated 2026-11
      secret_token: "{secret}"
"""


@pytest.fixture
def config_file(tmp_path):
    path = write_config(tmp_path / "tongdai.yaml")
    text = path.read_text(encoding="utf-8")
    head = text[:text.index("channels:")]
    path.write_text(head + COMMENTED.format(token=TOKEN, secret=SECRET), encoding="utf-8")
    return path


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_add_keeps_comments_and_a_running_process_loads_the_channel(config_file, hub,
                                                                       monkeypatch):
    monkeypatch.setenv("TG_SALES_TOKEN", "654321:SALES-token_abcdefghijklmn")
    hub.watch.check_s = 0
    r = cli("channels", "add", "tg-sales", "--adapter", "telegram",
            "--set", "bot_token=${TG_SALES_TOKEN}", "--set", "secret_token=sales-secret_42")
    assert r.exit_code == 0, r.output
    text = config_file.read_text(encoding="utf-8")
    for kept in ("# Shop ABC's hub", "# the main bot (BotFather: @shopabc_bot)",
                 "# rotated 2026-11", "routing:"):
        assert kept in text
    assert "  - id: tg-sales\n    adapter: telegram\n    settings:\n      bot_token: " \
           "${TG_SALES_TOKEN}\n" in text  # the reference stays a reference
    assert set(load_config(str(config_file)).channel_settings) == {"tg-test", "tg-sales"}
    assert hub.watch.poll() == "applied"
    assert hub.adapter("tg-sales").settings.bot_token.get_secret_value().startswith("654321:")

    r = cli("channels", "remove", "tg-sales")
    assert r.exit_code == 0, r.output
    text = config_file.read_text(encoding="utf-8")
    assert "tg-sales" not in text and "# the main bot (BotFather: @shopabc_bot)" in text
    assert "# rotated 2026-11" in text
    assert hub.watch.poll() == "applied" and "tg-sales" not in hub.adapters


def test_an_invalid_result_is_refused_and_the_file_is_unchanged(config_file, hub):
    before = config_file.read_bytes()
    r = cli("channels", "add", "tg-2", "--adapter", "telegram",
            "--set", "bot_token=not a token", "--set", "secret_token=s3cret_s3cret")
    assert r.exit_code == 1
    assert f"{config_file}: channels[tg-2].settings.bot_token:" in r.output
    assert "Fix:" in r.output and "(the file is unchanged)" in r.output
    r = cli("channels", "add", "tg-3", "--adapter", "telegram",
            "--set", "bot_token=${NOT_SET_ANYWHERE}", "--set", "secret_token=s3cret_s3cret")
    assert r.exit_code == 1 and "NOT_SET_ANYWHERE is not set" in r.output
    r = cli("channels", "add", "tg-test", "--adapter", "telegram")
    assert r.exit_code == 1 and "channels[tg-test]: this id is taken" in r.output
    r = cli("channels", "add", "x", "--adapter", "no-such-adapter")
    assert r.exit_code == 1 and "channels[x].adapter: no adapter called" in r.output
    r = cli("channels", "remove", "nope")
    assert r.exit_code == 1 and "channels[nope]: no such channel" in r.output
    assert config_file.read_bytes() == before
    assert [p.name for p in config_file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_removing_a_channel_something_names_is_refused(tmp_path, monkeypatch):
    path = write_config(tmp_path / "t.yaml", extra="""
sla:
  policies:
    - {name: bot-chat, channels: [tg-test], first_response: 1h}
""")
    load_config(str(path))  # valid as it is
    monkeypatch.setenv("TONGDAI_CONFIG", str(path))
    before = path.read_bytes()
    r = cli("channels", "remove", "tg-test")
    assert r.exit_code == 1 and "sla.policies[0].channels: no channel 'tg-test'" in r.output
    assert path.read_bytes() == before
