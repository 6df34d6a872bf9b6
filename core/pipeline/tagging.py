"""Tagging: the message's language and keyword rules from the config.

Text arrives in Vietnamese (often typed without diacritics), Chinese and English. Keywords are
matched on a folded form (lower case, Vietnamese diacritics removed, đ → d), so a rule for
"hoàn tiền" also catches "hoan tien" and "HOÀN TIỀN".
"""

from __future__ import annotations

import re
import unicodedata

from tongdai.core.config import TaggingSection

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Letters only Vietnamese uses among our languages (precomposed forms after NFC).
_VI_LETTERS = re.compile(
    r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"
    r"ĂÂĐÊÔƠƯẠẢẤẦẨẪẬẮẰẲẴẶẸẺẼẾỀỂỄỆỈỊỌỎỐỒỔỖỘỚỜỞỠỢỤỦỨỪỬỮỰỲỴỶỸ]"
)
# Frequent Vietnamese words as typed without diacritics, none of them common English words.
_VI_BARE = frozenset(
    ["khong", "duoc", "minh", "toi", "ban", "cho", "nhe", "nha", "roi", "chua", "voi", "nhung", "dang", "muon", "giup", "xin", "cam", "on", "tien", "nap", "the", "loi", "sao", "vay", "gi", "lam", "sau", "truoc", "hom", "qua", "nay", "kia", "anh", "chi", "em", "oi", "a", "shop", "dat", "hang", "giao", "tra", "hoan", "tai", "khoan", "mat", "khau", "dang", "nhap", "ma", "so", "dien", "thoai", "bao", "nhieu", "cua", "cac", "mot", "hai", "ba", "bon", "nam", "duoi", "tren", "thi", "la", "co"]
)
_EN_WORDS = frozenset(
    ["the", "is", "are", "was", "were", "you", "your", "my", "i", "we", "they", "it", "this", "that", "please", "help", "order", "refund", "account", "password", "with", "for", "not", "have", "has", "can", "could", "would", "should", "what", "when", "where", "how", "why", "thanks", "thank", "hello", "hi", "and", "or", "but", "do", "does", "did"]
)
_WORD = re.compile(r"[a-z]+")


def fold(text: str) -> str:
    """Lower case without diacritics, for matching: ``"Hoàn TIỀN"`` → ``"hoan tien"``."""
    text = text.lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def detect_language(text: str | None) -> str | None:
    """``vi``, ``zh``, ``en`` or None when there is too little to tell."""
    if not text:
        return None
    if _CJK.search(text):
        return "zh"
    if _VI_LETTERS.search(unicodedata.normalize("NFC", text)):
        return "vi"
    words = _WORD.findall(fold(text))
    if not words:
        return None
    vi = sum(w in _VI_BARE for w in words)
    en = sum(w in _EN_WORDS for w in words)
    if vi > en:
        return "vi"
    if en > 0:
        return "en"
    return None


class Tagger:
    """Applies the configured tagging rules to message text."""

    def __init__(self, cfg: TaggingSection) -> None:
        self.detect = cfg.detect_language
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for rule in cfg.rules:
            words = sorted({fold(w).strip() for w in rule.any if w.strip()}, key=len, reverse=True)
            # Word boundaries for Latin keywords; CJK keywords have no spaces to bound them.
            parts = [re.escape(w) if _CJK.search(w) else rf"(?<!\w){re.escape(w)}(?!\w)"
                     for w in words]
            self._rules.append((rule.tag, re.compile("|".join(parts))))

    def tags(self, text: str | None) -> tuple[list[str], str | None]:
        """(tags, language) for a message's text."""
        if not text:
            return [], None
        lang = detect_language(text) if self.detect else None
        folded = fold(text)
        tags = [tag for tag, rx in self._rules if rx.search(folded)]
        if lang:
            tags.append(f"lang:{lang}")
        return tags, lang
