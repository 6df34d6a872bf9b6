"""A customer's given name from their full name, in the order their language writes it.

Canned replies greet by ``{{customer.first_name}}``; "Chào Nguyễn" greets the family. Where the
given name sits depends on the language:

- Vietnamese writes the family name first and the given name last: "Nguyễn Văn An" → "An".
  Platforms built on Western forms often hold it the other way round ("An Nguyễn": Telegram's
  first_name and last_name), so a known Vietnamese family name at one end says which end it is.
- Chinese writes the family name first, without spaces: "王小明" → "小明"; the family name is
  one character, or two for a compound surname ("欧阳娜娜" → "娜娜", "司馬懿" → "懿").
- English and most others write the given name first: "John Smith" → "John".

The script of the name decides first (Han characters → Chinese; Vietnamese letters or a
Vietnamese family name → Vietnamese), then the customer's language (``vi``, ``zh-*``), then the
first word.
"""

from __future__ import annotations

import re
import unicodedata

# Compound (two-character) Chinese surnames, Simplified and Traditional.
COMPOUND_SURNAMES = frozenset([
    "欧阳", "歐陽", "司马", "司馬", "诸葛", "諸葛", "上官", "东方", "東方", "皇甫", "尉迟", "尉遲", "公孙", "公孫",
    "慕容", "长孙", "長孫", "宇文", "司徒", "夏侯", "令狐", "端木", "申屠", "轩辕", "軒轅", "澹台", "澹臺", "独孤",
    "獨孤", "南宫", "南宮", "西门", "西門", "百里", "呼延", "万俟", "萬俟", "闻人", "聞人", "濮阳", "濮陽", "单于",
    "單于", "太史", "东郭", "東郭", "公冶", "赫连", "赫連", "钟离", "鍾離", "宗政", "拓跋", "左丘", "谷梁", "穀梁",
    "司空", "仲孙", "仲孫",
])

# The commonest Vietnamese family names (about nine people in ten carry one), folded (no marks).
VIETNAMESE_SURNAMES = frozenset([
    "nguyen", "tran", "le", "pham", "hoang", "huynh", "phan", "vu", "vo", "dang", "bui",
    "do", "ho", "ngo", "duong", "ly", "dinh", "truong", "lam", "trinh", "doan", "luong",
    "cao", "ha", "quach", "luu", "chau", "thai", "khuc", "kieu", "tang", "tong",
])  # (not Mai, Văn: more often a given or middle name)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+")
# What only Vietnamese writes among Latin-script names (decomposed, so tone-marked letters
# count too: "ữ" is u, horn, tilde): đ, the breve (ă), the horn (ơ ư), the hook above and the
# dot below ("Hỷ", "Đạt"). A circumflex, acute or grave alone says nothing (Hélène, José).
_VIETNAMESE_MARKS = {"\u0306", "\u031b", "\u0309", "\u0323"}


def _fold(word: str) -> str:
    s = unicodedata.normalize("NFD", word.casefold().replace("đ", "d"))
    return "".join(c for c in s if not unicodedata.combining(c))


def _looks_vietnamese(name: str) -> bool:
    return any(c in _VIETNAMESE_MARKS or c in "đĐ" for c in unicodedata.normalize("NFD", name))


def chinese_given_name(name: str) -> str:
    """"王小明" → "小明", "欧阳娜娜" → "娜娜"; a name of one character, or only a surname,
    is returned whole."""
    cut = 2 if name[:2] in COMPOUND_SURNAMES else 1
    return name[cut:] if len(name) > cut else name


def given_name(full_name: str | None, language: str | None = None) -> str | None:
    """The given name in ``full_name`` (None when there is no name). ``language``: the
    customer's (``vi``, ``en``, ``zh-Hans``...), used when the name's script does not say."""
    name = " ".join((full_name or "").split())
    if not name:
        return None
    lang = (language or "").lower()
    han = _HAN.findall(name)
    latin = [w for w in name.split() if not _HAN.fullmatch(w)]
    if han and (not latin or lang.startswith("zh")):
        return chinese_given_name(max(han, key=len))
    words = [w.strip(",.") for w in latin if w.strip(",.")] or name.split()
    if len(words) == 1:
        return words[0]
    first_is_family = _fold(words[0]) in VIETNAMESE_SURNAMES
    last_is_family = _fold(words[-1]) in VIETNAMESE_SURNAMES
    if last_is_family and not first_is_family:
        return words[0]  # "An Nguyễn": written in Western order
    if first_is_family or lang == "vi" or _looks_vietnamese(" ".join(words)):
        return words[-1]
    return words[0]
