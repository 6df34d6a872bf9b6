"""Scoring the bot's matching on a labelled set of questions (``tongdai faq eval``).

A set is a YAML file: ``questions`` (each ``q``, ``lang``, ``article`` — an article id or
``none`` — and optionally ``holdout: true``) and ``articles``, the knowledge base its labels
assume (a path next to it). The project's own set is ``core/selfservice/evalsets/
questions.yaml`` against the sample knowledge base.

At a threshold: *answered* is the share of questions the bot answers (confidence at or
above it); *precision@1* the share of those answered with the labelled article (a ``none``
question answered is wrong). A ``none`` question left to a person, or a labelled one, counts
as handed off — the safe miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tongdai.core.selfservice.articles import Article, FileError, load_file
from tongdai.core.selfservice.matching import Index

DEFAULT_SET = Path(__file__).resolve().parent / "evalsets" / "questions.yaml"
NONE = "none"


@dataclass(frozen=True, slots=True)
class Scored:
    q: str
    lang: str
    want: str
    got: str  # the best article's id ("none": nothing matched)
    confidence: float
    holdout: bool


@dataclass(slots=True)
class Point:
    threshold: float
    answered: int = 0
    right: int = 0
    total: int = 0
    misses: list[Scored] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.right / self.answered if self.answered else 1.0

    @property
    def share(self) -> float:
        return self.answered / self.total if self.total else 0.0


def load_set(path: Path) -> tuple[list[dict], list[Article]]:
    """The questions of a set and the articles it names."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FileError(f"{path}: cannot read the evaluation set: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise FileError(f"{path}: an evaluation set is a mapping with a 'questions' list")
    for i, m in enumerate(data["questions"]):
        if not isinstance(m, dict) or not isinstance(m.get("q"), str) or not m.get("article"):
            raise FileError(f"{path}: questions[{i}]: needs 'q' and 'article' (an id or none)")
    if not data.get("articles"):
        raise FileError(f"{path}: name the knowledge base: 'articles: kb.yaml'")
    articles = load_file(path.parent / data["articles"])
    ids = {a.id for a in articles} | {NONE}
    for i, m in enumerate(data["questions"]):
        if m["article"] not in ids:
            raise FileError(f"{path}: questions[{i}].article: no article {m['article']!r} "
                              "in the knowledge base; fix the id or write none")
    return data["questions"], articles


def score(questions: list[dict], index: Index) -> list[Scored]:
    out = []
    for m in questions:
        got = index.match(m["q"])
        out.append(Scored(m["q"], str(m.get("lang") or "-"), str(m["article"]),
                          got.article.id if got.article else NONE, got.confidence,
                          bool(m.get("holdout"))))
    return out


def at(scored: list[Scored], threshold: float) -> Point:
    """Precision@1 and the share answered at ``threshold``."""
    p = Point(threshold, total=len(scored))
    for s in scored:
        if s.confidence >= threshold and s.got != NONE:
            p.answered += 1
            if s.got == s.want:
                p.right += 1
            else:
                p.misses.append(s)
        elif s.want != NONE and s.got == s.want:
            p.misses.append(s)  # would have been right: handed off needlessly
    return p


def curve(scored: list[Scored], steps: int = 10) -> list[Point]:
    return [at(scored, i / steps) for i in range(steps)]
