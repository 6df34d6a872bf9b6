"""Reading bytes whose charset nobody declared, or declared wrongly: a mostly-UTF-8 text with a
few stray bytes, and everything else through charset-normalizer (docs/decisions.md, "Email").

A guess is never silent: callers record it in the mail's ``defects``.
"""

from __future__ import annotations

import re

from charset_normalizer import from_bytes
from charset_normalizer.md import mess_ratio

# Mail is line-oriented 8-bit text: UTF-16/32 without a BOM and UTF-7 never arrive undeclared,
# and on short inputs the detector likes to "find" them in any even number of Latin bytes.
_NOT_MAIL = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]
# Readings as clean as the best one are a tie, won by the declared hint, then by what the hub's
# customers write: windows-1252 first (on short Latin text every CJK codec also "reads" clean,
# while CJK bytes read as windows-1252 are visibly messy), then Chinese (GB18030 holds GBK and
# GB2312), Big5, Vietnamese windows-1258.
_PREFERRED = ("cp1252", "gb18030", "big5", "cp1258")
_TIE = 0.02
_SAMPLE = 8192  # characters measured for mess: the detector samples long texts the same way
_STRAY = re.compile("[\udc80-\udcff]")


def mostly_utf8(data: bytes) -> tuple[str, int] | None:
    """(text, stray bytes) when ``data`` is UTF-8 but for a few bytes, else None.

    A Windows program pasting one cp1252 byte (a no-break space, a curly quote) into UTF-8
    text is common; reading the whole text as cp1252 for that byte garbles every other
    character. The stray bytes are read as cp1252 on their own. Legacy multi-byte text (GBK,
    Big5, Shift_JIS) forms valid UTF-8 sequences only by accident, far fewer than it breaks.
    """
    text = data.decode("utf-8", "surrogateescape")
    stray = len(text) - len(_STRAY.sub("", text))
    wide = len(text) - len(text.encode("ascii", "ignore")) - stray
    if not stray or wide < 2 * stray:
        return None
    return _STRAY.sub(lambda m: bytes([ord(m[0]) - 0xDC00]).decode("cp1252", "replace"),
                      text), stray


def _mess(data: bytes, codec: str) -> float | None:
    """How garbled ``data`` reads in ``codec`` (charset-normalizer's measure), None if it
    does not decode."""
    try:
        return mess_ratio(data.decode(codec)[:_SAMPLE])
    except (UnicodeDecodeError, LookupError):
        return None


def guess(data: bytes, prior: str | None = None) -> str | None:
    """The codec ``data`` most plausibly is in, or None when nothing reads it.

    charset-normalizer proposes codecs with how garbled each reading is; ``prior`` (the
    charset the mail declares elsewhere) and windows-1252 are measured the same way, and the
    cleanest reading wins, ties as ``_PREFERRED`` says.
    """
    found = {m.encoding: m.chaos for m in from_bytes(data, cp_exclusion=_NOT_MAIL)}
    order = [c for c in (prior, *_PREFERRED) if c]
    for codec in order:
        if codec not in found and (mess := _mess(data, codec)) is not None:
            found[codec] = mess
    if not found:
        return None
    best = min(found.values())
    tied = [c for c in found if found[c] <= best + _TIE]
    return min(tied, key=lambda c: order.index(c) if c in order else len(order))
