"""Scoring the classifier on a labelled set of messages (``tongdai rules eval``).

A set is a YAML file: ``messages`` (each ``text``, ``lang``, ``tags``, ``class``) and, next to
it, the rules its labels assume (``rules: rules.yaml``, the ``tagging``/``priority``/
``routing`` sections of a config). The project's own set is
``core/pipeline/evalsets/messages.yaml``, shipped in the package so that an installed
hub can run it too (see :data:`DEFAULT_SET`).

Language accuracy counts exact answers (``zh-Hant`` for ``zh`` is wrong, ``None`` for "nothing
to tell" is right when so labelled). Tags are scored as micro precision and recall over the
tags the set labels somewhere; other tags the rules give (a catalogue of banks or provinces)
are not scored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tongdai.core.config import HubConfig, errors_from_validation
from tongdai.core.errors import ConfigError
from tongdai.core.pipeline.classify import Classifier

DEFAULT_SET = Path(__file__).resolve().parent / "evalsets" / "messages.yaml"


@dataclass(slots=True)
class Miss:
    text: str
    cls: str
    want_lang: str | None
    got_lang: str | None
    want_tags: list[str]
    got_tags: list[str]


@dataclass(slots=True)
class Score:
    messages: int = 0
    language_right: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    by_class: Counter = field(default_factory=Counter)  # class → messages
    right_by_class: Counter = field(default_factory=Counter)  # class → language right
    by_tag: dict[str, Counter] = field(default_factory=dict)  # tag → tp/fp/fn
    misses: list[Miss] = field(default_factory=list)

    @property
    def language_accuracy(self) -> float:
        return self.language_right / self.messages if self.messages else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_set(path: Path) -> tuple[list[dict], Path | None]:
    """The messages of a set and the rules file it names (None: it names none)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read the evaluation set ({exc})",
                          "give the path of a YAML set like core/pipeline/evalsets/"
                          "messages.yaml") from None
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ConfigError(str(path), "messages", "an evaluation set is a mapping with a "
                          "'messages' list", "start from core/pipeline/evalsets/messages.yaml")
    for i, m in enumerate(data["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("text"), str):
            raise ConfigError(str(path), f"messages[{i}]", "needs a 'text'",
                              "give every message its text")
    rules = data.get("rules")
    return data["messages"], (path.parent / rules) if rules else None


def load_rules(path: Path) -> HubConfig:
    """The tagging, priority and routing sections of a rules file as a configuration."""
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read the rules ({exc})",
                          "fix the 'rules' path the set names") from None
    wanted = {k: data[k] for k in ("tagging", "priority", "routing") if k in data}
    try:
        return HubConfig.model_validate(wanted)
    except ValidationError as exc:
        first, *_ = errors_from_validation(exc, str(path))
        raise ConfigError(first.file, first.key, first.problem, first.fix) from None


def evaluate(messages: list[dict], classifier: Classifier) -> Score:
    """Classify every message and score language and tags against the labels."""
    scored = {t for m in messages for t in m.get("tags") or []}
    s = Score()
    for m in messages:
        got = classifier.classify(m["text"], "eval")
        cls = m.get("class", "-")
        want_tags = set(m.get("tags") or [])
        got_tags = {t for t in got.tags if t in scored}
        s.messages += 1
        s.by_class[cls] += 1
        lang_ok = got.language == m.get("lang")
        s.language_right += lang_ok
        s.right_by_class[cls] += lang_ok
        for tag in want_tags | got_tags:
            c = s.by_tag.setdefault(tag, Counter())
            kind = "tp" if tag in want_tags and tag in got_tags else (
                "fn" if tag in want_tags else "fp")
            c[kind] += 1
            setattr(s, kind, getattr(s, kind) + 1)
        if not lang_ok or want_tags != got_tags:
            s.misses.append(Miss(m["text"], cls, m.get("lang"), got.language,
                                 sorted(want_tags), sorted(got_tags)))
    return s
