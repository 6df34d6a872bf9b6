"""The console's languages: one file each in webhooks/static/i18n, complete, and chosen by the
agent's setting, the browser's Accept-Language, else console.default_language."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.console.conftest import console_csrf, form_token, log_in
from tongdai.core import i18n
from tongdai.core.config import ConfigInvalid, load_config
from tongdai.core.workspace import users

PLACEHOLDER = re.compile(r"\{(\w[\w.:]*)\}")
FILES = sorted(i18n.DIR.glob("*.json"))


def test_there_are_english_vietnamese_and_chinese_in_both_scripts():
    assert {"en", "vi", "zh", "zh-Hant"} <= {f.stem for f in FILES}
    names = i18n.languages()
    assert (names["zh"], names["zh-Hant"], names["vi"]) == ("简体中文", "繁體中文", "Tiếng Việt")


def test_the_traditional_file_has_no_simplified_characters():
    """zh-Hant.json was made from zh.json (OpenCC s2twp, then core/i18n.py's EDITS_HANT): a text
    copied over unconverted, or a character the conversion missed, shows here — converting to
    Traditional (Taiwan standard characters) changes nothing in a Traditional text."""
    import opencc

    s2tw = opencc.OpenCC("s2tw")
    hant = json.loads((i18n.DIR / "zh-Hant.json").read_text(encoding="utf-8"))
    simplified = json.loads((i18n.DIR / "zh.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in hant.items() if s2tw.convert(v) != v} == {}
    assert sum(s2tw.convert(v) != v for v in simplified.values()) > 500  # (the check bites)
    # the Taiwan usage the conversion alone gets wrong
    assert i18n.traditional("直接回复本邮件，即可在客户的渠道上回复客户") == (
        "直接回覆本郵件，即可在客戶的管道上回覆客戶")
    assert hant["mail.how"].startswith("直接回覆本郵件")
    assert (hant["logout"], hant["inbox.empty"]) == ("登出", "暫無對話。")  # Taiwan words


@pytest.mark.parametrize("path", [f for f in FILES if f.stem != i18n.BASE], ids=lambda f: f.stem)
def test_every_language_file_has_the_keys_and_placeholders_of_english(path):
    """A text missing from a file would show in English; a lost {placeholder} would show
    nothing where the value belongs; a stray one would show as {name}."""
    base = json.loads((i18n.DIR / "en.json").read_text(encoding="utf-8"))
    other = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(set(base) - set(other)) == [], f"missing in {path.name}: add them"
    assert sorted(set(other) - set(base)) == [], f"in {path.name} but not in en.json"
    assert other["_language"] and other["_language"] != base["_language"]
    wrong = {k: (sorted(set(PLACEHOLDER.findall(base[k]))), sorted(set(PLACEHOLDER.findall(v))))
             for k, v in other.items() if k in base
             and set(PLACEHOLDER.findall(base[k])) != set(PLACEHOLDER.findall(v))}
    assert wrong == {}, f"{path.name}: key: (en's placeholders, this file's)"


def test_the_default_language_is_one_the_console_has(tmp_path):
    path = tmp_path / "tongdai.yaml"
    path.write_text("console:\n  default_language: zh\n", encoding="utf-8")
    assert load_config(str(path)).hub.console.default_language == "zh"
    path.write_text("console:\n  default_language: fr\n", encoding="utf-8")
    with pytest.raises(ConfigInvalid) as exc:
        load_config(str(path))
    (err,) = exc.value.errors
    assert err.key == "console.default_language" and "en, vi, zh" in err.problem


def test_the_browser_language_picks_chinese_for_the_login_page_and_its_errors(client, people):
    for header in ("zh-CN,zh;q=0.9,en;q=0.8", "zh", "en;q=0.5, zh-Hans-SG;q=0.9"):
        page = client.get("/login", headers={"Accept-Language": header})
        html = page.get_data(as_text=True)
        assert '<html lang="zh">' in html and "用户名" in html, header
    # Taiwan, Hong Kong, Macau and the Traditional script get Traditional characters
    for header in ("zh-TW", "zh-HK,zh;q=0.8", "en;q=0.5, zh-Hant;q=0.9", "zh-Hant-HK", "zh-mo"):
        html = client.get("/login", headers={"Accept-Language": header}).text
        assert '<html lang="zh-Hant">' in html and "使用者名稱" in html, header
    assert '<html lang="zh-Hant">' in client.get("/login?lang=zh-hant").text  # as typed
    h = {"Accept-Language": "zh-CN"}
    page = client.get("/login", headers=h)
    wrong = client.post("/login", headers=h, data={
        "csrf": form_token(page.get_data(as_text=True)), "name": "an", "password": "nope-nope"})
    assert wrong.status_code == 401 and "用户名或密码错误。" in wrong.get_data(as_text=True)
    # a language the console has not: the configured default (vi); ?lang= beats the header
    assert '<html lang="vi">' in client.get("/login", headers={"Accept-Language": "fr"}).text
    assert '<html lang="en">' in client.get("/login?lang=en", headers=h).text


def test_the_agents_choice_beats_the_browser_and_the_console_speaks_chinese(client, hub, people):
    assert log_in(client, "an").status_code == 303
    csrf = console_csrf(client)
    ok = client.patch("/api/v1/users/an", json={"language": "zh"},
                      headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    html = client.get("/console", headers={"Accept-Language": "vi-VN"}).text
    assert '<html lang="zh">' in html and "退出登录" in html
    assert '<option value="zh" lang="zh" selected>简体中文</option>' in html
    dash = client.get("/console/dashboard")  # an agent: refused, in Chinese
    assert dash.status_code == 403 and "报表仅供主管和管理员查看。" in dash.text
    bad = client.patch("/api/v1/users/an", json={"language": "klingon"},
                       headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 400 and "en, vi, zh" in bad.json["error"]["message"]
    assert users.get(hub, "an").language == "zh"


def test_adding_a_language_is_one_file(client, hub, people, tmp_path, monkeypatch):
    """Copy en.json to xx.json, translate: the switcher offers it and agents may choose it."""
    for f in FILES:
        shutil.copy(f, tmp_path / f.name)
    xx = json.loads((i18n.DIR / "en.json").read_text(encoding="utf-8"))
    xx.update({"_language": "Ngôn ngữ X", "logout": "X-logout", "login.submit": "X-login"})
    (tmp_path / "xx.json").write_text(json.dumps(xx, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(i18n, "DIR", tmp_path)
    try:
        login = client.get("/login", headers={"Accept-Language": "xx"}).text
        assert "X-login" in login and '<a href="/login?lang=xx" lang="xx">Ngôn ngữ X</a>' in login
        log_in(client, "an")
        csrf = console_csrf(client)
        assert client.patch("/api/v1/users/an", json={"language": "xx"},
                            headers={"X-CSRF-Token": csrf}).status_code == 200
        assert "X-logout" in client.get("/console").text
    finally:
        monkeypatch.undo()
        users.update(hub, "an", {"language": ""})
        i18n.reload()


def test_a_value_is_put_in_as_it_is():
    """A customer's text holding "{who}" is not filled in again (one pass)."""
    assert i18n.text("zh", "staff.agent_reply", who="An", text="gửi {who} {x}") == (
        "↩ An → 客户：\ngửi {who} {x}")
