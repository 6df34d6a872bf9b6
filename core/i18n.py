"""The languages agents use the hub in: one JSON file per language, nothing else to change.

``webhooks/static/i18n/<code>.json`` holds every text the console, its log-in page, the
dashboard, the knowledge-base page and the agents' mails show, keyed like ``"login.wrong"``;
``"_language"`` is the language's own name for the switcher ("中文"). The set of languages is
the set of files: copy ``en.json`` to ``xx.json``, translate the values, restart — the switcher
lists it, agents may pick it, ``Accept-Language: xx`` chooses it and the server's texts come
from it. A key a file lacks falls back to English (tests/console/test_i18n.py keeps the files
complete). ``{name}`` in a text is a value filled in, the same way in Python and in the page.

``zh`` is Chinese in Simplified characters, ``zh-Hant`` in Traditional (Taiwan usage), chosen
for browsers asking for ``zh-TW``, ``zh-HK``, ``zh-MO`` or ``zh-Hant``. ``zh-Hant.json`` is
``zh.json`` converted by OpenCC ``s2twp`` (Taiwan phrases) and then ``EDITS_HANT``: a machine
conversion, not a translator's — a key added to ``zh.json`` is converted the same way
(``python -m tongdai.core.i18n``), and the test keeps every text free of Simplified characters.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

DIR = Path(__file__).resolve().parents[1] / "webhooks" / "static" / "i18n"
BASE = "en"  # the complete one; every other file has its keys
NAME_KEY = "_language"
_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_SLOT = re.compile(r"\{([^{}]+)\}")


@functools.cache
def _catalog(directory: Path) -> dict[str, dict[str, str]]:
    out = {}
    for f in sorted(directory.glob("*.json")):
        if _CODE.match(f.stem):
            out[f.stem] = json.loads(f.read_text(encoding="utf-8"))
    return out


def languages() -> dict[str, str]:
    """{code: the language's own name} of every file, in code order."""
    return {code: d.get(NAME_KEY, code) for code, d in _catalog(DIR).items()}


def strings(lang: str) -> dict[str, str]:
    """Every text in ``lang`` (English where its file lacks a key)."""
    cat = _catalog(DIR)
    return _merged(DIR, lang if lang in cat else BASE)


@functools.cache
def _merged(directory: Path, lang: str) -> dict[str, str]:
    cat = _catalog(directory)
    return {**cat.get(BASE, {}), **cat[lang]}


def fill(template: str, /, **params: object) -> str:
    """``template`` with each ``{name}`` replaced by ``params[name]`` (as the page's t() does),
    in one pass: a value that itself holds ``{name}`` (a customer's text) is left as it is."""
    return _SLOT.sub(lambda m: str(params[m[1]]) if m[1] in params else m[0], template)


def text(lang: str, key: str, /, **params: object) -> str:
    """The text ``key`` in ``lang``, its ``{name}`` filled in."""
    return fill(strings(lang)[key], **params)


def explain(lang: str, exc: BaseException) -> str:
    """A refusal said in ``lang``: the case the error names (``error.<reason>``, as the
    console's page does), else the error's own (English) words."""
    reason, params = getattr(exc, "reason", ""), dict(getattr(exc, "params", {}) or {})
    s = strings(lang)
    if not reason or f"error.{reason}" not in s:
        return str(exc)
    why = f"reach.{params.get('why')}"
    if reason == "channel_unreachable" and why in s:
        params["why"] = fill(s[why], **(params.get("detail") or {}))
    return fill(s[f"error.{reason}"], **params)


def choose(*preferred: str, accept: str = "", default: str = BASE) -> str:
    """The first of ``preferred`` that is a language here, else the best match of an
    Accept-Language header (the tag, its script — ``zh-TW``, ``zh-HK``, ``zh-MO`` and
    ``zh-Hant-*`` are written in Traditional characters: ``zh-Hant`` — then its language:
    ``zh-CN`` → ``zh``), else ``default``."""
    known = _catalog(DIR)
    lower = {code.lower(): code for code in known}
    for p in preferred:
        if p and p.lower() in lower:  # (?lang=zh-hant as typed)
            return lower[p.lower()]
    for tag in _accepted(accept):
        for cand in (tag, _script(tag), tag.split("-")[0]):
            if cand in lower:
                return lower[cand]
    return default if default in known else BASE


_TRADITIONAL = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


def _script(tag: str) -> str:
    """``zh-hant`` for a Chinese tag written in Traditional characters, else the tag."""
    if any(tag == t or tag.startswith(t + "-") for t in _TRADITIONAL):
        return "zh-hant"
    return tag


def _accepted(header: str) -> list[str]:
    """The header's language tags, most wanted first (q=0 left out), lower-case."""
    ranked = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for prm in params.split(";"):
            k, _, v = prm.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        tag = tag.strip().lower()
        if tag and tag != "*" and q > 0:
            ranked.append((-q, i, tag))
    return [tag for _, _, tag in sorted(ranked)]


def reload() -> None:
    """Read the files again (tests that add one; a running hub reads them once)."""
    _catalog.cache_clear()
    _merged.cache_clear()


# What OpenCC s2twp leaves that Taiwan writes otherwise: a reply is 回覆, a customer's channel a
# 管道, a conversation 對話, a response 回應, settings 設定, "via" 透過, log out 登出, 「」 quotes
# (the phrase table reviewed against Taiwan usage in session 8)
EDITS_HANT = (("回複", "回覆"), ("回復", "回覆"), ("渠道", "管道"), ("退出登入", "登出"),
              ("重置密碼", "重設密碼"), ("重新打開", "重新開啟"), ("會話", "對話"),
              ("響應", "回應"), ("配置", "設定"), ("通過", "透過"), ("郵箱", "電子郵件"),
              ("添加", "新增"), ("賬號", "帳號"), ("只讀", "唯讀"), ("“", "「"), ("”", "」"))


def traditional(text: str) -> str:
    """A Simplified Chinese console text in Traditional characters, as ``zh-Hant.json`` was
    made from ``zh.json``."""
    out = _s2twp().convert(text)
    for a, b in EDITS_HANT:
        out = out.replace(a, b)
    return out


@functools.cache
def _s2twp():
    import opencc

    return opencc.OpenCC("s2twp")


def _convert_missing() -> list[str]:
    """Add to zh-Hant.json the keys of zh.json it lacks, converted; returns them."""
    simplified = json.loads((DIR / "zh.json").read_text(encoding="utf-8"))
    path = DIR / "zh-Hant.json"
    hant = json.loads(path.read_text(encoding="utf-8"))
    added = [k for k in simplified if k not in hant]
    hant = {k: hant.get(k) or traditional(v) for k, v in simplified.items()}
    path.write_text(json.dumps(hant, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return added


if __name__ == "__main__":
    print("zh-Hant.json: added", ", ".join(_convert_missing()) or "nothing")
