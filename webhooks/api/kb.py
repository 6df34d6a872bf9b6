"""The knowledge base the self-service bot answers from (core/selfservice/): everyone signed
in reads articles and tries a question; supervisors and admins edit; the bot's counts are for
supervisors."""

from __future__ import annotations

from flask import jsonify, request
from pydantic import Field
from spectree import Response as Resp

from tongdai.core.errors import BadRequest
from tongdai.core.selfservice import articles, bot, matching
from tongdai.core.workspace.access import require
from tongdai.webhooks.api import bp, hub, json_body, principal, spec
from tongdai.webhooks.api.schemas import ERRORS, Model, Strict

TAG = "knowledge base"


class VariantIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=8000)
    keywords: list[str] = Field([], max_length=100)


class ArticleIn(Strict):
    id: str | None = Field(None, description="the path's id (may be left out)")
    tags: list[str] = Field([], max_length=50)
    variants: dict[str, VariantIn] = Field(
        description="per language: vi, en, zh-Hans, zh-Hant (zh-Hant is made from zh-Hans "
                    "when absent)")


class ArticleOut(Model):
    id: str
    tags: list[str]
    variants: dict[str, dict]
    updated: int | None = None


class ArticlePage(Model):
    items: list[ArticleOut]
    version: int


class ArticleQuery(Strict):
    q: str | None = Field(None, max_length=300, description="only the articles whose id, "
                          "tags, titles or keywords hold this, accents optional, Simplified "
                          "and Traditional Chinese alike")


class MatchIn(Strict):
    text: str = Field(min_length=1, max_length=4000)


class MatchOut(Model):
    article: str | None
    confidence: float
    threshold: float
    answers: bool = Field(description="true: the bot would answer with the article")
    second: str | None = None


class StatsOut(Model):
    total: dict[str, int]
    channels: dict[str, dict[str, int]]
    languages: dict[str, dict[str, int]]


@bp.get("/kb/articles")
@spec.validate(query=ArticleQuery, resp=Resp(HTTP_200=ArticlePage, **ERRORS), tags=[TAG])
def kb_articles():
    """Every article with its language variants (or those ``q`` finds), and the knowledge
    base's version."""
    h = hub()
    found = articles.search(articles.all_articles(h), request.args.get("q", ""))
    return jsonify({"items": [a.to_dict() for a in found], "version": articles.version(h)})


@bp.get("/kb/articles/<article_id>")
@spec.validate(resp=Resp(HTTP_200=ArticleOut, **ERRORS), tags=[TAG])
def kb_article(article_id: str):
    """One article."""
    return jsonify(articles.get(hub(), article_id).to_dict())


@bp.put("/kb/articles/<article_id>")
@spec.validate(json=ArticleIn, resp=Resp(HTTP_200=ArticleOut, **ERRORS), tags=[TAG])
def kb_put_article(article_id: str):
    """Create or replace an article (supervisor or admin); every process's bot sees it on
    its next question."""
    require(principal(), "supervisor")
    data = json_body()
    if data.get("id") not in (None, article_id):
        raise BadRequest(f"id {data['id']!r} in the body is not the path's {article_id!r}")
    _named_refusals(article_id, data)
    try:
        article = articles.parse({**data, "id": article_id})
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    articles.save(hub(), [article])
    return jsonify(articles.get(hub(), article_id).to_dict())


def _named_refusals(article_id: str, data: dict) -> None:
    """The refusals a person makes in the console, named (``reason``) so it says them in its
    language; parse() below stays the one judge."""
    if not articles.valid_id(article_id):
        raise BadRequest(f"{article_id!r} is not an article id; use 1-48 lower-case letters, "
                         "digits, '-', '_' or '.'").because("kb_id", id=article_id)
    for lang, v in data["variants"].items():
        if lang not in articles.LANGUAGES:
            raise BadRequest(f"variants.{lang}: not a language the hub tells apart; use "
                             f"{', '.join(articles.LANGUAGES)}").because("kb_language",
                                                                         language=lang)
        if not v["title"].strip() or not v["body"].strip():
            raise BadRequest(f"variants.{lang}: needs a title and a body").because(
                "kb_incomplete", language=lang)
    if not data["variants"]:
        raise BadRequest("variants: give at least one language with a title and a body"
                         ).because("kb_no_variant")


@bp.delete("/kb/articles/<article_id>")
@spec.validate(resp=Resp("HTTP_204", **ERRORS), tags=[TAG])
def kb_delete_article(article_id: str):
    """Delete an article (supervisor or admin)."""
    require(principal(), "supervisor")
    articles.delete(hub(), article_id)
    return "", 204


@bp.post("/kb/match")
@spec.validate(json=MatchIn, resp=Resp(HTTP_200=MatchOut, **ERRORS), tags=[TAG])
def kb_match():
    """Which article the bot would answer ``text`` with, its confidence and whether that
    reaches the configured threshold."""
    h = hub()
    m = matching.index(h).match(json_body()["text"])
    threshold = h.config.hub.selfservice.threshold
    return jsonify({"article": m.article.id if m.article else None,
                    "confidence": m.confidence, "threshold": threshold,
                    "answers": m.article is not None and m.confidence >= threshold,
                    "second": m.second.id if m.second else None})


@bp.get("/kb/stats")
@spec.validate(resp=Resp(HTTP_200=StatsOut, **ERRORS), tags=[TAG])
def kb_stats():
    """The bot's counts (supervisor or admin): ``answered``, ``helped`` (pressed "this
    helped"), ``handoff`` (asked for a person, or the bot was unsure), ``refused`` (the
    platform's window was closed), in total, per channel and per language."""
    require(principal(), "supervisor")
    return jsonify(bot.stats(hub()))
