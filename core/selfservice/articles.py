"""Knowledge-base articles: what the bot answers with, kept in Redis.

An article has an ``id``, ``tags`` and one variant per language (``vi``, ``en``,
``zh-Hans``, ``zh-Hant``), each with a ``title``, a ``body`` and ``keywords`` (the ways
customers ask, for matching only). A ``zh-Hans`` variant without a ``zh-Hant`` one is
answered in Traditional by OpenCC (``s2twp``: Taiwan phrasing), so a team writes Chinese once.

Storage: ``td:kb:articles`` (id → JSON) and ``td:kb:version``, bumped in the same MULTI as
every change: each process's index (matching.py) is rebuilt when it sees a new version.
Import/export (``tongdai faq import/export``) reads and writes the same shape as YAML or JSON.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson
import yaml

from tongdai.core.errors import NotFound, TongdaiError
from tongdai.core.hub import Hub

LANGUAGES = ("vi", "en", "zh-Hans", "zh-Hant")
SAMPLE = Path(__file__).resolve().parent / "sample_kb.yaml"
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")  # + "ss:helped:" fits Telegram's 64 bytes


class FileError(TongdaiError):
    """An articles or questions file that cannot be used; the message names the file, the
    place in it and the fix."""


@dataclass(frozen=True, slots=True)
class Variant:
    title: str
    body: str
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    variants: dict[str, Variant]
    tags: tuple[str, ...] = ()
    updated_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def variant(self, language: str | None) -> tuple[str, Variant]:
        """(language, variant) to answer in: the customer's, the other Chinese script
        (Traditional made from Simplified), then Vietnamese, English, any."""
        lang = language or ""
        if lang in self.variants:
            return lang, self.variants[lang]
        if lang.startswith("zh"):
            if lang != "zh-Hans" and "zh-Hans" in self.variants:
                s = self.variants["zh-Hans"]
                return "zh-Hant", Variant(_to_traditional(s.title), _to_traditional(s.body),
                                          s.keywords)
            if "zh-Hant" in self.variants:
                return "zh-Hant", self.variants["zh-Hant"]
        for fallback in ("vi", "en", *self.variants):
            if fallback in self.variants:
                return fallback, self.variants[fallback]
        raise ValueError(f"article {self.id} has no variant")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tags": list(self.tags),
                "variants": {lang: {"title": v.title, "body": v.body,
                                    "keywords": list(v.keywords)}
                             for lang, v in self.variants.items()},
                **({"updated": self.updated_ms} if self.updated_ms else {})}


@functools.lru_cache(maxsize=1)
def _s2twp():
    import opencc

    return opencc.OpenCC("s2twp")


def _to_traditional(text: str) -> str:
    return _s2twp().convert(text)


def _fail(problem: str) -> NoReturn:
    raise ValueError(problem)


def valid_id(article_id: str) -> bool:
    return bool(_ID.match(article_id))


def parse(data: Any, where: str = "article") -> Article:
    """An article from its dict shape; ValueError naming the field and the fix."""
    if not isinstance(data, dict):
        _fail(f"{where}: an article is a mapping with id, tags, variants")
    aid = str(data.get("id") or "")
    if not _ID.match(aid):
        raise ValueError(f"{where}.id: {aid!r} is not an article id; use 1-48 lower-case "
                         "letters, digits, '-', '_' or '.'")
    raw = data.get("variants")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}[{aid}].variants: give at least one of "
                         f"{', '.join(LANGUAGES)} with a title and a body")
    variants = {}
    for lang, v in raw.items():
        if lang not in LANGUAGES:
            raise ValueError(f"{where}[{aid}].variants.{lang}: not a language the hub tells "
                             f"apart; use {', '.join(LANGUAGES)}")
        if not isinstance(v, dict) or not str(v.get("title") or "").strip() \
                or not str(v.get("body") or "").strip():
            raise ValueError(f"{where}[{aid}].variants.{lang}: needs a title and a body")
        kws = v.get("keywords") or []
        if not isinstance(kws, list):
            _fail(f"{where}[{aid}].variants.{lang}.keywords: a list of phrases")
        variants[lang] = Variant(str(v["title"]).strip(), str(v["body"]).strip(),
                                 tuple(str(k) for k in kws if str(k).strip()))
    tags = data.get("tags") or []
    if not isinstance(tags, list):
        _fail(f"{where}[{aid}].tags: a list of tags")
    return Article(aid, variants, tuple(str(t) for t in tags), int(data.get("updated") or 0))


def load_file(path: Path) -> list[Article]:
    """Articles of a YAML or JSON file (``articles:`` list, or the list itself)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))  # JSON is YAML
    except (OSError, yaml.YAMLError) as exc:
        raise FileError(f"{path}: cannot read the articles: {exc}") from None
    items = data.get("articles") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise FileError(f"{path}: expected an 'articles' list")
    out, seen = [], set()
    for i, item in enumerate(items):
        try:
            a = parse(item, f"articles[{i}]")
        except ValueError as exc:
            raise FileError(f"{path}: {exc}") from None
        if a.id in seen:
            raise FileError(f"{path}: articles[{i}].id: {a.id!r} appears twice; rename one")
        seen.add(a.id)
        out.append(a)
    return out


def dump(articles: list[Article], fmt: str = "yaml") -> str:
    """Articles as a file ``load_file`` reads back."""
    data = {"articles": [a.to_dict() for a in articles]}
    if fmt == "json":
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


# -- Redis ------------------------------------------------------------------------------------
def all_articles(hub: Hub) -> list[Article]:
    raw = hub.redis.hgetall(hub.keys.kb("articles"))
    return sorted((parse(orjson.loads(v)) for v in raw.values()), key=lambda a: a.id)


def search(items: list[Article], q: str) -> list[Article]:
    """The articles whose id, a tag, a title or a keyword holds ``q``, both folded as the inbox
    search folds them: accents optional, case ignored, Traditional Chinese as Simplified
    ("发货" finds "訂單什麼時候發貨？")."""
    from tongdai.core.workspace.search_index import fold_text

    want = fold_text(q)
    if not want:
        return items

    def texts(a: Article) -> list[str]:
        return [a.id, *a.tags, *(x for v in a.variants.values() for x in (v.title, *v.keywords))]

    return [a for a in items if any(want in fold_text(x) for x in texts(a))]


def get(hub: Hub, article_id: str) -> Article:
    raw = hub.redis.hget(hub.keys.kb("articles"), article_id)
    if raw is None:
        raise NotFound(f"no article {article_id!r}")
    return parse(orjson.loads(raw))


def version(hub: Hub) -> int:
    return int(hub.redis.get(hub.keys.kb("version")) or 0)


def save(hub: Hub, articles: list[Article], replace: bool = False) -> int:
    """Store articles (``replace``: the knowledge base becomes exactly these) and bump the
    version in the same MULTI. Returns the new version."""
    from tongdai.core.clock import now_ms

    now = now_ms()
    pipe = hub.redis.pipeline(transaction=True)
    if replace:
        pipe.delete(hub.keys.kb("articles"))
    if articles:
        pipe.hset(hub.keys.kb("articles"), mapping={
            a.id: orjson.dumps({**a.to_dict(), "updated": now}) for a in articles})
    pipe.incr(hub.keys.kb("version"))
    return int(pipe.execute()[-1])


def delete(hub: Hub, article_id: str) -> None:
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hdel(hub.keys.kb("articles"), article_id)
    pipe.incr(hub.keys.kb("version"))
    gone, _ = pipe.execute()
    if not gone:
        raise NotFound(f"no article {article_id!r}")
