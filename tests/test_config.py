"""Configuration mistakes stop start-up with a message naming the file, the key and the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tongdai.core.config import ConfigInvalid, load_config

GOOD_CHANNEL = """
  - id: tg-main
    adapter: telegram
    settings:
      bot_token: "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ"
      secret_token: "s3cret"
"""


def write(tmp_path, text: str):
    p = tmp_path / "tongdai.yaml"
    p.write_text(text, encoding="utf-8")
    return str(p)


def errors_of(path: str) -> list:
    with pytest.raises(ConfigInvalid) as exc:
        load_config(path)
    return exc.value.errors


def test_missing_env_reference_names_file_key_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("TG_TOKEN_UNSET", raising=False)
    path = write(tmp_path, GOOD_CHANNEL.replace('"123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ"',
                                                "${TG_TOKEN_UNSET}").join(["channels:", ""]))
    (err,) = errors_of(path)
    assert err.file == path
    assert err.key == "channels[tg-main].settings.bot_token"
    assert "TG_TOKEN_UNSET is not set" in str(err) and "export TG_TOKEN_UNSET" in str(err)


def test_env_reference_with_default_and_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TG_SECRET", "from-env")
    path = write(tmp_path, "channels:" + GOOD_CHANNEL.replace('"s3cret"', "${TG_SECRET}"))
    cfg = load_config(path)
    _, settings = cfg.channel_settings["tg-main"]
    assert settings.secret_token.get_secret_value() == "from-env"


def test_bad_adapter_setting_names_channel_and_key(tmp_path):
    path = write(tmp_path, "channels:" + GOOD_CHANNEL.replace(
        '"123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ"', '"not-a-token"'))
    (err,) = errors_of(path)
    assert err.key == "channels[tg-main].settings.bot_token"
    assert "BotFather" in err.problem
    assert "ABCDEFGHIJ" not in str(err)  # never echo a secret back


def test_misspelled_setting_is_an_error_not_ignored(tmp_path):
    path = write(tmp_path, "channels:" + GOOD_CHANNEL + "      secret_tokn: x\n")
    (err,) = errors_of(path)
    assert err.key == "channels[tg-main].settings.secret_tokn"
    assert "remove this key or check its spelling" in err.fix


def test_a_misspelled_section_is_answered_with_the_right_name(tmp_path):
    path = write(tmp_path, "routng:\n  default_queue: general\n")
    (err,) = errors_of(path)
    assert err.key == "routng" and err.fix == "did you mean routing? Or remove this key"


def test_unknown_adapter_lists_the_ways_to_name_one(tmp_path):
    path = write(tmp_path, "channels:\n  - id: x1\n    adapter: whatsapp\n")
    (err,) = errors_of(path)
    assert err.key == "channels[x1].adapter"
    assert "telegram" in err.fix and "tongdai.adapters" in err.fix and "module:Class" in err.fix


def test_adapter_by_module_path(tmp_path):
    path = write(tmp_path, "channels:" + GOOD_CHANNEL.replace(
        "adapter: telegram", "adapter: tongdai.adapters.telegram:TelegramAdapter"))
    assert "tg-main" in load_config(path).channel_settings


def test_duplicate_channel_and_unknown_queue(tmp_path):
    path = write(tmp_path, "routing:\n  rules:\n    - {queue: vip}\nchannels:"
                 + GOOD_CHANNEL + GOOD_CHANNEL)
    keys = {e.key for e in errors_of(path)}
    assert keys == {"channels[tg-main].id", "routing.rules[0].queue"}


def test_bad_duration_and_yaml_syntax(tmp_path):
    (err,) = errors_of(write(tmp_path, "ingest:\n  raw_retention: forever\n"))
    assert err.key == "ingest.raw_retention" and "30s, 15m, 2h or 7d" in err.problem
    (err,) = errors_of(write(tmp_path, "channels: [\n"))
    assert err.key.startswith("line ")


def test_missing_file(tmp_path):
    (err,) = errors_of(str(tmp_path / "nope.yaml"))
    assert "does not exist" in err.problem and "TONGDAI_CONFIG" in err.fix


def test_cli_config_check_exits_2_with_the_message(tmp_path):
    path = write(tmp_path, "channels:\n  - id: x1\n    adapter: whatsapp\n")
    out = subprocess.run([sys.executable, "-m", "tongdai.core.cli", "config", "check", "--file", path],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert f"{path}: channels[x1].adapter: no adapter called 'whatsapp'" in out.stderr


def test_shipped_configs_are_valid(monkeypatch):
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"):
        monkeypatch.setenv(name, "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ" if "TOKEN" in name else "s")
    for name in ("FB_PAGE_TOKEN", "FB_VERIFY_TOKEN", "ZALO_OA_SECRET",
                 "ZALO_APP_SECRET", "ZALO_ACCESS_TOKEN", "ZALO_REFRESH_TOKEN",
                 "IMAP_PASSWORD", "MAILGUN_SIGNING_KEY", "SMTP_PASSWORD",
                 "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "SHOP_API_TOKEN"):
        monkeypatch.setenv(name, "a-secret-value-of-some-length")
    monkeypatch.setenv("FB_APP_SECRET", "0123456789abcdef0123456789abcdef")  # Meta: 32 hex
    assert "tg-demo" in load_config("config/tongdai.yaml").channel_settings
    example = load_config("config/tongdai.example.yaml").channel_settings
    assert set(example) == {"tg-main", "fb-shop", "zalo-oa", "line-oa", "mail-support"}
