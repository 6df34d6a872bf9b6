"""Which language a customer's message is in: ``vi``, ``en``, ``zh-Hans``, ``zh-Hant`` or ``zh``.

Support chat is short and informal, which is where statistical detectors are weakest:
"em can ho tro gap" (Vietnamese without diacritics) reads as English to lingua, and "mk bi
khoa tk r" (chat abbreviations) has no word any model knows. So a message is judged on three
kinds of evidence, each where it is strong:

* **script** — Han characters against Latin words: "我要refund" is Chinese with one English
  word. Whether it is Simplified or Traditional is read from characters only one script
  writes (OpenCC's tables): 无法登录 is ``zh-Hans``, 無法登錄 ``zh-Hant``, 我要退款 — the
  same in both — plain ``zh``.
* **what we know of Vietnamese** — letters only Vietnamese writes (ư, ơ, tone marks), and
  lists of words and chat abbreviations that Vietnamese customers type without marks and
  English never uses ("khong", "duoc", "ko", "dc", "tk", "ad").
* **lingua** (lingua-language-detector), restricted to the configured languages, for
  everything the lists do not know.

The detector is built once per process (:func:`detector`): the models are loaded then, never
per message.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Latin words, Vietnamese letters included ("100k" gives "k", which is no word we count).
LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]+")
_VI_MARKED = re.compile(
    r"[ăâđêôơưàáạảãằắặẳẵầấậẩẫèéẹẻẽềếệểễìíịỉĩòóọỏõồốộổỗờớợởỡùúụủũừứựửữỳýỵỷỹ]")

# Vietnamese words as typed without marks that are not English words (folded: "được" →
# "duoc"). Words both languages write ("the" = thẻ, "can" = cần, "an", "on", "to", "do", "me",
# "hang", "ban", "no", "so", "con") are in neither list: they say nothing.
VI_WORDS = frozenset(str.split("""
khong duoc minh toi cho nhe nha roi chua voi nhung dang muon giup xin cam tien nap loi sao
vay gi lam sau truoc hom qua nay kia anh chi em oi dat giao tra hoan tai khoan mat khau nhap
dien thoai bao nhieu cua cac mot hai ba bon nam duoi tren thi la co don hoi nao khi gio ngay
nhan gui doi lai het ve ra vao len xuong bi da se nua luon lan tu den trong ngoai nguoi vien
ho tro can gap ao mau hoai vo thay chuyen xac bang ly khoa dong rut dung cong thu that bai
khac lay alo duong chuyen phi cham tuan dau cuoi moi cu hay biet noi sai rat lam nhieu xu
dung thanh toan vui long kiem giam gia ma nhan tai sao
"""))
# Chat abbreviations Vietnamese customers type. Those with one meaning are also spelled out
# for keyword matching (core/pipeline/tagging.py); "mk" (mình / mật khẩu), "bn" (bao nhiêu /
# bạn), "dk" (được / đăng ký) and "hong" (không / hỏng) count as Vietnamese only.
VI_ABBREVIATIONS: dict[str, str] = {
    "ko": "khong", "k": "khong", "kh": "khong", "khg": "khong", "hok": "khong", "hk": "khong",
    "dc": "duoc", "r": "roi", "oy": "roi", "ui": "roi", "j": "gi", "z": "vay", "v": "vay",
    "e": "em", "tk": "tai khoan", "ck": "chuyen khoan", "sdt": "so dien thoai",
    "dt": "dien thoai", "dh": "don hang", "sp": "san pham", "nv": "nhan vien", "ht": "ho tro",
    "h": "gio", "bh": "bao gio", "vs": "voi", "cx": "cung", "ntn": "nhu the nao",
    "hum": "hom", "wa": "qua", "lun": "luon", "trc": "truoc", "ms": "moi", "ng": "nguoi",
    "ns": "noi", "thui": "thoi",
}
VI_CHAT = frozenset(VI_ABBREVIATIONS) | {"mk", "bn", "dk", "hong", "ad", "ak", "ah", "nhe", "nha"}
EN_WORDS = frozenset(str.split("""
i is are was were you your my we they it this that please pls plz help order refund account
password with for not have has could would should what when where how why thanks thank hello
hi and or but does did will been there here get got still yes again from about want need item
money wallet card payment failed arrived broken locked cancel delivered shipping someone stole
reason company invoice bigger any discount code keeps crashing asap urgent much many package
deducted up lost charged twice forgot log of at be if am im just our their which who there
sorry dear sir madam received receive number tracking yet already
"""))
# Words every language here uses in chat: no evidence at all.
NEUTRAL = frozenset(str.split("ok oke okay shop ship cod acc otp voucher app game size vip login "
                              "tks thx hihi haha hehe"))


@dataclass(frozen=True, slots=True)
class Detection:
    """A message's main language (None: nothing to tell) and the evidence, for ``rules test``."""

    language: str | None
    why: str


def fold_latin(text: str) -> str:
    """Lower case without diacritics, "đ" → "d": ``"Hoàn TIỀN"`` → ``"hoan tien"``."""
    text = text.lower().replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@functools.lru_cache(maxsize=1 << 16)
def _latin_word(word: str) -> tuple[str, bool]:
    """(folded, written with a letter only Vietnamese has), once per word and process."""
    return fold_latin(word), bool(_VI_MARKED.search(word.lower()))


class ChineseScript:
    """Tells Simplified from Traditional by the characters only one of them writes.

    The two sets are read once (~0.1 s) from OpenCC's character tables: a character
    Traditional → Simplified changes and Simplified → Traditional keeps is Traditional-only
    (碼), and the other way round Simplified-only (码); characters both scripts write (折,
    扣: also the simplified forms of 摺 and 釦) count for neither. Only the character tables
    are loaded (1.4 MB), not the phrase tables of OpenCC's ready-made configs (27 MB)."""

    def __init__(self) -> None:
        t2s, s2t = _characters_only("TSCharacters.ocd2"), _characters_only("STCharacters.ocd2")
        trad: set[str] = set()
        simp: set[str] = set()
        for lo, hi in ((0x4E00, 0xA000), (0x3400, 0x4DC0)):
            chars = "".join(map(chr, range(lo, hi)))
            to_s, to_t = t2s.convert(chars), s2t.convert(chars)
            for c, s, t in zip(chars, to_s, to_t, strict=True):  # character tables: 1 to 1
                if s != c and t == c:
                    trad.add(c)
                elif t != c and s == c:
                    simp.add(c)
        self.trad, self.simp = frozenset(trad), frozenset(simp)

    def of(self, text: str) -> str:
        """``zh-Hant``, ``zh-Hans``, or ``zh`` when its characters are the same in both."""
        t = sum(c in self.trad for c in text)
        s = sum(c in self.simp for c in text)
        return "zh-Hant" if t > s else "zh-Hans" if s > t else "zh"


class LanguageDetector:
    """The main language of short support messages, among ``languages`` (ISO 639-1)."""

    def __init__(self, languages: tuple[str, ...], accuracy: str = "low") -> None:
        self.languages = languages
        self.script = ChineseScript() if "zh" in languages else None
        self.lingua = _build_lingua(languages, accuracy)

    def detect(self, text: str | None) -> Detection:
        """The main language of ``text`` and why."""
        if not text:
            return Detection(None, "no text")
        text = unicodedata.normalize("NFC", text)
        han = len(HAN.findall(text))
        words = LATIN_WORD.findall(text)
        if han and self.script is not None and han >= len(words):
            # a Han character carries about what a Latin word does: the more of them wins
            return Detection(self.script.of(text), f"{han} Han characters, {len(words)} Latin "
                             "words")
        if not words:
            return Detection(None, "no words")
        return self._latin(text, words)

    def _latin(self, text: str, words: list[str]) -> Detection:
        seen = [_latin_word(w) for w in words]
        folded = [f for f, _ in seen]
        marked = sum(m for _, m in seen)
        vi = sum(1 for w in folded if w in VI_WORDS or w in VI_CHAT)
        en = sum(1 for w in folded if w in EN_WORDS)
        evidence = f"{marked} marked, {vi} Vietnamese and {en} English words"
        if "vi" in self.languages and "en" in self.languages:
            # Letters only Vietnamese writes are the strongest evidence; a name such as
            # "Nguyễn" in English text is outweighed by the English words around it.
            score = 2 * marked + vi - en
            if score >= 2 or (score > 0 and en == 0):
                return Detection("vi", evidence)
            if score <= -2 or (score < 0 and vi == 0 and marked == 0):
                return Detection("en", evidence)
            if all(w in NEUTRAL for w in folded):
                return Detection(None, "only words every language uses")
        if self.lingua is None:
            return Detection(None, evidence + "; no detector")
        found = self.lingua.detect_language_of(text)
        if found is None:
            return Detection(None, evidence + "; lingua: none")
        lang = found.iso_code_639_1.name.lower()
        return Detection(lang, evidence + f"; lingua: {lang}")


def _characters_only(table: str):
    """An OpenCC converter with one of its character tables and nothing else. OpenCC finds
    tables next to a config file or in its own folder, so the config names it by full path."""
    import json
    import os
    import tempfile

    import opencc

    path = os.path.join(os.path.dirname(opencc.__file__), "clib", "share", "opencc", table)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "chars.json")
        with open(cfg, "w", encoding="utf-8") as f:
            json.dump({"name": table, "conversion_chain": [
                {"dict": {"type": "ocd2", "file": path}}]}, f)
        return opencc.OpenCC(cfg)


def _build_lingua(languages: tuple[str, ...], accuracy: str):
    """lingua restricted to the configured languages (Chinese excepted: the script tells),
    models preloaded now rather than at the first message. None when only one is left."""
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    wanted = []
    for code in languages:
        if code == "zh":
            continue
        wanted.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
    if len(wanted) < 2:
        return None
    b = LanguageDetectorBuilder.from_languages(*wanted).with_preloaded_language_models()
    if accuracy == "low":
        b = b.with_low_accuracy_mode()
    return b.build()


def detector(languages: tuple[str, ...] = ("vi", "zh", "en"),
             accuracy: str = "low") -> LanguageDetector:
    """The process's detector for these languages: built once, shared by every hub."""
    return _detector(tuple(languages), accuracy)


@functools.lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...], accuracy: str) -> LanguageDetector:
    return LanguageDetector(languages, accuracy)
