"""Turning mail bytes into text: charset labels as mail software really uses them, and RFC
2047 encoded words whose declared charset lies (see docs/decisions.md, "Email")."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

from tongdai.adapters.email import guess

# Labels mail software sends that Python does not know.
_LABELS = {"gb_2312-80": "gb2312", "x-gbk": "gbk", "x-euc-cn": "gb2312", "csgb2312": "gb2312",
           "windows-874": "cp874", "x-mac-roman": "mac-roman", "windows-31j": "cp932",
           "x-sjis": "shift_jis", "cp50220": "iso-2022-jp", "cp50221": "iso-2022-jp",
           "cp50222": "iso-2022-jp", "iso-2022-jp-ms": "iso-2022-jp"}
# Codec -> codecs to try, in order. The first is the normal reading of the label; needing a
# later one is a defect. Chinese mail labelled gb2312 is really GBK (or GB18030), Big5 mail
# carries HKSCS, "iso-8859-1" carries Windows quotes, "us-ascii" carries 8-bit bytes,
# Shift_JIS and ISO-2022-JP mail carry Microsoft's NEC and IBM characters (①, ㈱, ㍉).
_READINGS = {
    "gb2312": ("gb2312", "gbk", "gb18030"), "gbk": ("gbk", "gb18030"),
    "big5": ("big5", "big5hkscs", "cp950"), "cp950": ("cp950", "big5hkscs"),
    "euc_kr": ("euc_kr", "cp949"), "iso8859-1": ("cp1252", "iso8859-1"),
    "ascii": ("ascii", "utf-8"), "shift_jis": ("shift_jis", "cp932"),
    "iso2022_jp": ("iso2022_jp", "cp50220"),
}
# When a label's readings all fail, the codec its writer most likely used really.
_LIKELY = {"iso2022_jp": "cp932", "shift_jis": "cp932", "euc_jp": "cp932"}
SURROGATES = re.compile("[\udc80-\udcff]")


def codec_name(label: str) -> str | None:
    """Python's name for the text codec of a charset label, or None when unknown."""
    label = _LABELS.get(label, label)
    try:
        name = codecs.lookup(label).name
        b"".decode(name)  # rejects bytes-to-bytes codecs such as "base64"
    except (LookupError, ValueError):
        return None
    return name


_JP_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B)")


def _iso2022jp_ms(data: bytes) -> str:
    """ISO-2022-JP as Microsoft writes it (CP50220/50221, Outlook's): JIS X 0208 plus NEC's
    row 13 (①, ㈱) and IBM's extensions, which the strict codec refuses. Each two-byte JIS
    code moves to its Shift_JIS position and is read as cp932, which holds those characters.
    Raises UnicodeDecodeError on anything else (8-bit bytes, unknown escapes)."""
    out, mode, pos = [], b"(B", 0
    for m in [*_JP_ESCAPE.finditer(data), None]:
        chunk = data[pos:m.start() if m else len(data)]
        try:
            if mode in (b"$@", b"$B"):
                sjis = bytearray()
                for j1, j2 in zip(chunk[::2], chunk[1::2], strict=True):
                    if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
                        raise ValueError
                    s1 = (j1 + 1) // 2 + 0x70
                    sjis += bytes([s1 + 0x40 if s1 >= 0xA0 else s1,
                                   j2 + (0x1F + (j2 >= 0x60) if j1 % 2 else 0x7E)])
                out.append(sjis.decode("cp932"))
            elif mode == b"(I":  # JIS X 0201 half-width katakana
                out.append(bytes(b + 0x80 for b in chunk).decode("cp932"))
            else:
                out.append(chunk.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise UnicodeDecodeError("cp50220", data, pos, pos + len(chunk),
                                     "not ISO-2022-JP") from None
        if m:
            mode, pos = m[1], m.end()
    return "".join(out)


def _decode(data: bytes, codec: str) -> str:
    """``data`` decoded strictly by ``codec`` (or our CP50220 reading)."""
    return _iso2022jp_ms(data) if codec == "cp50220" else data.decode(codec)


def decode_bytes(data: bytes, label: str | None, defects: list[str]) -> str:
    """``data`` as text in the declared charset ``label``, or the nearest reading that fits.

    After the label's own readings and UTF-8: the label's reading when only a few bytes are
    broken, UTF-8 with a few stray bytes, then a guess (guess.py); each is recorded in
    ``defects``. Bytes nothing reads get U+FFFD.
    """
    label = (label or "").strip().strip("\"'").lower()
    codec = codec_name(label) if label else "ascii"
    if codec is None:  # unknown: UTF-8, then codecs whose names look like the label
        similar = (codec_name(label.removeprefix("x-")), codec_name(re.sub(r"[^a-z0-9]", "", label)))
        chain = ("utf-8", *(c for c in similar if c))
    else:
        chain = _READINGS.get(codec, (codec,))
    # Valid UTF-8 is almost never an accident: the last try before guessing.
    chain = chain if "utf-8" in chain else (*chain, "utf-8")
    said = label or "no charset"
    for name in chain:
        try:
            text = _decode(data, name)
        except UnicodeDecodeError:
            continue
        if name != chain[0] or codec is None:
            defects.append(f"declared {said}, decoded as {name}")
        return text
    if guess.mostly_utf8(data) is None:
        # The label's widest reading with a few broken sequences (a body cut inside a
        # character) beats a guess, which would read all of it in another charset. Not for
        # 7-bit labels: 8-bit bytes under "us-ascii" or ISO-2022-JP are another charset.
        widest = [c for c in chain if c not in ("utf-8", "cp50220", "ascii", "iso2022_jp")][-1:]
        text = data.decode(widest[0], "replace") if widest else ""
        if text and 0 < text.count("\ufffd") <= max(3, len(text) // 100):
            defects.append(f"declared {said}, undecodable bytes replaced")
            return text
    return decode_undeclared(data, _LIKELY.get(codec or ""), defects, f"declared {said}")


def reading(data: bytes, label: str | None) -> str | None:
    """The first of ``label``'s readings that decodes ``data``, or None."""
    codec = codec_name((label or "").strip().strip("\"'").lower()) if label else None
    for name in _READINGS.get(codec, (codec,)) if codec else ():
        try:
            _decode(data, name)
        except UnicodeDecodeError:
            continue
        return name
    return None


def decode_undeclared(data: bytes, prior: str | None, defects: list[str], what: str,
                      sample: bytes | None = None) -> str:
    """8-bit ``data`` no label reads: UTF-8 with stray bytes, else the codec charset-normalizer
    finds in ``sample`` (default ``data``; a mail's headers are judged together, one alone is
    too short), ``prior`` favoured. ``what`` starts the defect recorded."""
    mixed = guess.mostly_utf8(data)
    if mixed:
        defects.append(f"{what}, decoded as utf-8 with {mixed[1]} stray byte(s) as cp1252")
        return mixed[0]
    for source in dict.fromkeys((sample or data, data)):
        codec = guess.guess(source, prior)
        try:
            text = _decode(data, codec) if codec else None
        except UnicodeDecodeError:
            continue
        if text is not None:
            defects.append(f"{what}, guessed {codec}")
            return text
    defects.append(f"{what}, undecodable bytes replaced")
    return data.decode("utf-8", "replace")


# --- headers --------------------------------------------------------------------------------

# Encoded text may hold spaces or start with one, against RFC 2047 but as mail programs
# write it (and as other readers accept it); it never holds "?".
_WORD = re.compile(r"=\?([^?\s*]+)(\*[^?\s]*)?\?([bBqQ])\?([^?]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of one RFC 2047 encoded-word's text, or None when it is not decodable."""
    if encoding in "bB":
        try:
            text = "".join(text.split())
            return base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                  text.replace("_", " ").encode("utf-8"))


def decode_words(value: str, defects: list[str]) -> str:
    """A header value with its RFC 2047 encoded-words decoded through ``decode_bytes``.

    Adjacent words in one charset are joined before decoding: senders split a multi-byte
    character across two words. Words inside quotes (Gmail does it) are decoded too.
    """
    out: list[str] = []
    pending: list = []  # [charset, bytes] of the run of adjacent words not yet decoded
    pos = 0

    def flush() -> None:
        """Decode the pending run of words into ``out``."""
        if pending:
            out.append(decode_bytes(pending[1], pending[0], defects))
            pending.clear()

    for m in _WORD.finditer(value):
        gap, data, charset = value[pos:m.start()], _word_bytes(m[3], m[4]), m[1].lower()
        if not (pending and not gap.strip()):  # blanks between two words are not text
            flush()
            out.append(gap)
        if data is None:
            defects.append(f"undecodable encoded-word {m[0][:40]}")
            flush()
            out.append(m[0])
        else:
            if pending and pending[0] != charset:
                flush()
            pending[:] = [charset, (pending[1] if pending else b"") + data]
        pos = m.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def nfc(text: str) -> str:
    """``text`` NFC-normalised: Vietnamese cp1258 and Mac mail send combining tone marks."""
    return unicodedata.normalize("NFC", text)
