"""Tagging: the message's language and the keyword rules of ``tagging.rules``.

Keywords match the way customers write, not the way a rule is spelled:

* Vietnamese without case or diacritics ("đ" → "d"): a rule for "hoàn tiền" catches "hoan
  tien" and "HOÀN TIỀN". Where *both* sides carry marks they must agree, so "gấp" (urgent)
  does not fire on "gặp" (meet), nor "mất tiền" on "mật"; old and new tone placement
  ("hủy"/"huỷ") are the same word.
* Chat abbreviations, in Vietnamese messages: "ko nhan dc hang" is matched as "khong nhan
  duoc hang" too (the unambiguous ones of ``language.VI_ABBREVIATIONS``).
* English by whole words: "refund" does not fire on "refunded" or "unrefundable".
* Chinese without word boundaries, Traditional and Simplified alike: text and keywords are
  both folded to Simplified with Mainland phrasing (OpenCC ``tw2sp``), so a rule for 登录
  catches 登錄 and Taiwan's 登入, 账号 catches 帳號.
* Mixed text: the Latin words and the Chinese of "我要refund" are matched each their way.

A rule may list ``none``: keywords that stop it (delivery's 还没到 must not fire on 还没到账,
"not arrived" of a top-up). Matching is a dictionary look-up per word or per Chinese
character position — not one regular expression per rule — so 200 rules cost about what 3 do.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from tongdai.core.config import TaggingSection
from tongdai.core.pipeline.language import HAN, VI_ABBREVIATIONS, detector, fold_latin

# Latin words and numbers: "100k", "2", "lan" ("2 lần"); Han characters are matched apart.
_TOKEN = re.compile(r"[0-9A-Za-z\u00c0-\u024f\u1e00-\u1eff]+")
# Variants OpenCC's Simplified output keeps apart that customers use for the same word.
_ZH_VARIANTS = str.maketrans({"帐": "账"})
MAX_CHARS = 4000  # a long mail is tagged on its beginning: the customer's point comes first


def fold(text: str) -> str:
    """Lower case without diacritics, for matching: ``"Hoàn TIỀN"`` → ``"hoan tien"``."""
    return fold_latin(text)


@functools.lru_cache(maxsize=1)
def _to_simplified():
    import opencc

    return opencc.OpenCC("tw2sp")


def fold_chinese(text: str) -> str:
    """Traditional (and Taiwan phrasing) → Simplified, lower case: 無法登入 → 无法登录."""
    return _to_simplified().convert(text.lower()).translate(_ZH_VARIANTS)


def _marks(word: str) -> tuple[str, ...]:
    """The word's diacritics in any order ("hủy" and "huỷ" alike); () for a bare word."""
    marks = [c for c in unicodedata.normalize("NFD", word) if unicodedata.combining(c)]
    return tuple(sorted(marks)) + (("đ",) if "đ" in word else ())


@dataclass(frozen=True, slots=True)
class _Word:
    folded: str
    marks: tuple[str, ...]

    def agrees(self, other: _Word) -> bool:
        """Same folded word, and the marks agree where both were typed with marks."""
        return not self.marks or not other.marks or self.marks == other.marks


@functools.lru_cache(maxsize=1 << 16)
def _word(w: str) -> _Word:
    """Chat repeats its words: each is folded once per process, not once per message."""
    return _Word(fold_latin(w), _marks(w))


def _words(text: str) -> list[_Word]:
    return [_word(w) for w in _TOKEN.findall(text.lower())]


@dataclass(frozen=True, slots=True)
class _Keyword:
    rule: int
    written: str  # as the rule writes it: what "which rule fired" shows
    words: tuple[_Word, ...] = ()  # Latin keywords
    chinese: str = ""  # Chinese (or mixed) keywords, folded
    stops: bool = False  # from the rule's ``none``


@dataclass(slots=True)
class Tagging:
    """What tagging found: the language, tags (``lang:`` ones last) and, per keyword tag,
    the rule and the keyword that fired."""

    language: str | None
    tags: list[str]
    fired: dict[str, tuple[int, str]] = field(default_factory=dict)  # tag → (rule, keyword)
    language_why: str = ""


class Tagger:
    """Applies the configured tagging rules to message text (built once per hub)."""

    def __init__(self, cfg: TaggingSection) -> None:
        self.cfg = cfg
        self.detector = (detector(tuple(cfg.languages), cfg.language_accuracy)
                         if cfg.detect_language else None)
        # Latin keywords by their first folded word, or their first two ("giao hàng"): most
        # keywords share first words ("bị", "giao", "thẻ"), so pairs keep the checks few
        self._latin: dict[str | tuple[str, str], list[_Keyword]] = {}
        self._chinese: dict[str, list[_Keyword]] = {}  # first character → keywords
        for i, rule in enumerate(cfg.rules):
            for kw, stops in [(k, False) for k in rule.any] + [(k, True) for k in rule.none]:
                self._add(i, kw, stops)

    def _add(self, rule: int, written: str, stops: bool) -> None:
        written = unicodedata.normalize("NFC", written.strip())
        if not written:
            return
        if HAN.search(written):
            folded = fold_chinese(written)
            self._chinese.setdefault(folded[0], []).append(
                _Keyword(rule, written, chinese=folded, stops=stops))
            return
        words = tuple(_words(written))
        if words:
            key = words[0].folded if len(words) == 1 else (words[0].folded, words[1].folded)
            self._latin.setdefault(key, []).append(
                _Keyword(rule, written, words=words, stops=stops))

    def classify(self, text: str | None, also: str | None = None) -> Tagging:
        """Language and tags of a message's text; keywords also match in ``also`` (a mail's
        subject: often the whole problem), the language is the text's (a subject may be an
        old thread's, in another language) unless there is no text."""
        if not text and not also:
            return Tagging(None, [])
        said = unicodedata.normalize("NFC", (text or also or "")[:MAX_CHARS])
        text = said if not (also and text) else unicodedata.normalize(
            "NFC", f"{also}\n{text}"[:MAX_CHARS])
        found = self.detector.detect(said) if self.detector else None
        lang = found.language if found else None
        hits: dict[int, str] = {}  # rule → first keyword that fired
        stopped: set[int] = set()
        words = _words(text)
        self._match_words(words, hits, stopped)
        if lang == "vi":
            spelled = _spell_out(words)
            if spelled is not words:
                self._match_words(spelled, hits, stopped)
        if self._chinese and HAN.search(text):
            self._match_chinese(fold_chinese(text), hits, stopped)
        fired: dict[str, tuple[int, str]] = {}
        for i in sorted(hits):  # rule order: the first rule of a tag names the keyword
            if i not in stopped:
                fired.setdefault(self.cfg.rules[i].tag, (i, hits[i]))
        tags = list(fired)
        if lang:
            tags.append("lang:" + lang.partition("-")[0])
            if "-" in lang:
                tags.append("lang:" + lang)
        return Tagging(lang, tags, fired, found.why if found else "")

    def tags(self, text: str | None) -> tuple[list[str], str | None]:
        """(tags, language) for a message's text."""
        t = self.classify(text)
        return t.tags, t.language

    def _match_words(self, words: list[_Word], hits: dict[int, str], stopped: set[int]) -> None:
        latin, last = self._latin, len(words) - 1
        for i, w in enumerate(words):
            for kw in latin.get(w.folded, ()):
                if kw.words[0].agrees(w):
                    _record(kw, hits, stopped)
            if i == last:
                break
            for kw in latin.get((w.folded, words[i + 1].folded), ()):
                n = len(kw.words)
                if (kw.rule in hits and not kw.stops) or i + n > len(words):
                    continue
                if all(a.folded == b.folded and a.agrees(b)
                       for a, b in zip(kw.words, words[i:i + n], strict=True)):
                    _record(kw, hits, stopped)

    def _match_chinese(self, folded: str, hits: dict[int, str], stopped: set[int]) -> None:
        for i, c in enumerate(folded):
            for kw in self._chinese.get(c, ()):
                if folded.startswith(kw.chinese, i):
                    _record(kw, hits, stopped)


def _record(kw: _Keyword, hits: dict[int, str], stopped: set[int]) -> None:
    if kw.stops:
        stopped.add(kw.rule)
    else:
        hits.setdefault(kw.rule, kw.written)


def _spell_out(words: list[_Word]) -> list[_Word]:
    """The words with chat abbreviations spelled out ("ko dc" → "khong duoc"), or ``words``
    itself when there is none."""
    if not any(w.folded in VI_ABBREVIATIONS for w in words):
        return words
    out: list[_Word] = []
    for w in words:
        full = VI_ABBREVIATIONS.get(w.folded)
        out.extend(_Word(p, ()) for p in full.split()) if full else out.append(w)
    return out
