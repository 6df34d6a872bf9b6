"""Which article answers a customer's question, and how sure we are.

Ranking is BM25 (``bm25s``) over folded terms, the folding tagging uses
(core/pipeline/tagging.py): Vietnamese and English words lower case without diacritics
("đ" → "d"), chat abbreviations spelled out ("ko nhan dc" → "khong nhan duoc"), each word and
each pair of neighbouring words a term ("mat khau" is one idea); Chinese folded to Simplified
(OpenCC tw2sp, so 帳號 is 账号) and cut into character bigrams plus single characters — no
dictionary to keep, and measured as good as jieba on the labelled set (docs/decisions.md).

One document per article: its titles and keywords (twice: they are how customers ask) and
bodies, every language together, so a question in any language finds it.

The confidence (0–1) is how much of the question the best article explains: the IDF weight
of the question's terms found in that article over the IDF weight of all of them (a term
the knowledge base never uses counts as rare), times a margin factor that drops when the
second article scores close to the first. BM25 scores themselves do not compare across
questions; this does, so one threshold fits all (measured: ``tongdai faq eval``).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import unicodedata
from dataclasses import dataclass

from tongdai.core.hub import Hub
from tongdai.core.pipeline.language import HAN
from tongdai.core.pipeline.tagging import _spell_out, _words, fold_chinese
from tongdai.core.selfservice.articles import Article, all_articles, version

MAX_CHARS = 600  # a question is its beginning; a long mail is not a FAQ question
# Words that say nothing about which article (greetings, pronouns, politeness, fillers).
STOP = frozenset(str.split("""
a ad admin ah ak anh ban bn cho chi chu cua da dang di duoc e em giup gi ha hay hello hi
hoi khi la lam luon ma minh moi muon nao nay nha nhe nhi o oi oke ok roi sao shop the thi toi
tui va vay vi voi xin vs z ne a chao cam on
i me my you your we our it is are was be to the of in on at for and or a an do does did
can could please pls plz how what when where why with this that have has not no hi hello thanks
"""))
_ZH_STOP = frozenset("的了吗呢吧啊我你您请问是在")
UNKNOWN_IDF = 1.0  # relative weight of a question term no article uses (× the max idf)


def terms(text: str) -> list[str]:
    """The folded terms of a text (a question or an article)."""
    text = unicodedata.normalize("NFC", text[:MAX_CHARS * 20])
    out: list[str] = []
    words = _spell_out(_words(text))
    folded = [w.folded for w in words]
    for i, w in enumerate(folded):
        if w not in STOP and not w.isdigit():
            out.append(w)
        if i + 1 < len(folded) and not (w in STOP and folded[i + 1] in STOP):
            out.append(f"{w}_{folded[i + 1]}")
    if HAN.search(text):
        run: list[str] = []
        for c in fold_chinese(text) + " ":
            if HAN.match(c):
                run.append(c)
                continue
            out.extend(_han_terms(run))
            run = []
    return out


def _han_terms(run: list[str]) -> list[str]:
    out = [c for c in run if c not in _ZH_STOP]
    out += [a + b for a, b in itertools.pairwise(run)]
    return out


def document(a: Article) -> list[str]:
    """The terms an article is found by."""
    parts = []
    for v in a.variants.values():
        asks = " \n ".join([v.title, *v.keywords])
        parts += [asks, asks, v.body]
    return terms(" \n ".join(parts))


@dataclass(frozen=True, slots=True)
class Match:
    article: Article | None
    confidence: float
    score: float  # the BM25 score (for `faq eval` and the API's try-out)
    second: Article | None = None


class Index:
    """A BM25 index of a list of articles (built once per knowledge-base version)."""

    def __init__(self, articles: list[Article]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG
        self.articles = articles
        self.bm25 = None
        self.vocab: dict[str, int] = {}
        if not articles:
            return
        docs = [document(a) for a in articles]
        self.bm25 = bm25s.BM25()
        self.bm25.index(docs, show_progress=False)
        self.vocab = self.bm25.vocab_dict
        n = len(docs)
        self.docsets = [set(d) for d in docs]
        df: dict[str, int] = {}
        for s in self.docsets:
            for t in s:
                df[t] = df.get(t, 0) + 1
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.unknown_idf = UNKNOWN_IDF * math.log(1 + (n - 0.5) / 1.5)

    def match(self, question: str) -> Match:
        q = terms(question[:MAX_CHARS])
        known = [t for t in dict.fromkeys(q) if t in self.vocab]
        if self.bm25 is None or not known:
            return Match(None, 0.0, 0.0)
        scores = self.bm25.get_scores(known)
        order = scores.argsort()[::-1][:2]
        best = int(order[0])
        s1 = float(scores[best])
        s2 = float(scores[order[1]]) if len(order) > 1 else 0.0
        if s1 <= 0:
            return Match(None, 0.0, 0.0)
        qset = list(dict.fromkeys(q))
        total = sum(self.idf.get(t, self.unknown_idf) for t in qset)
        found = sum(self.idf[t] for t in qset if t in self.docsets[best])
        coverage = found / total if total else 0.0
        margin = 1.0 - s2 / s1
        confidence = coverage * (0.5 + 0.5 * margin)
        second = self.articles[int(order[1])] if len(order) > 1 else None
        return Match(self.articles[best], round(confidence, 4), s1, second)


_cache: dict[str, tuple[int, Index]] = {}
_lock = threading.Lock()


def index(hub: Hub) -> Index:
    """This process's index of the hub's knowledge base, rebuilt when its version moved
    (an edit in any process bumps ``td:kb:version``)."""
    v = version(hub)
    key = hub.keys.kb("articles")
    got = _cache.get(key)
    if got is not None and got[0] == v:
        return got[1]
    with _lock:
        got = _cache.get(key)
        if got is None or got[0] != v:
            got = (v, Index(all_articles(hub)))
            _cache[key] = got
    return got[1]
