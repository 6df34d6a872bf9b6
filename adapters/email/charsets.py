"""Turning mail bytes into text: charset labels as mail software really uses them, and RFC
2047 encoded words whose declared charset lies (see docs/decisions.md, "Email")."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

# Labels mail software sends that Python does not know.
_LABELS = {"gb_2312-80": "gb2312", "x-gbk": "gbk", "x-euc-cn": "gb2312", "csgb2312": "gb2312",
           "windows-874": "cp874", "x-mac-roman": "mac-roman"}
# Codec -> codecs to try, in order. The first is the normal reading of the label; needing a
# later one is a defect. Chinese mail labelled gb2312 is really GBK (or GB18030), Big5 mail
# carries HKSCS, "iso-8859-1" carries Windows quotes, "us-ascii" carries 8-bit bytes.
_READINGS = {
    "gb2312": ("gb2312", "gbk", "gb18030"), "gbk": ("gbk", "gb18030"),
    "big5": ("big5", "big5hkscs", "cp950"), "cp950": ("cp950", "big5hkscs"),
    "euc_kr": ("euc_kr", "cp949"), "iso8859-1": ("cp1252", "iso8859-1"),
    "ascii": ("ascii", "utf-8", "cp1252"),
}
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


def decode_bytes(data: bytes, label: str | None, defects: list[str]) -> str:
    """``data`` as text in the declared charset ``label``, or the nearest reading that fits."""
    label = (label or "").strip().strip("\"'").lower()
    codec = codec_name(label) if label else "ascii"
    if codec is None:  # unknown: UTF-8, then codecs whose names look like the label
        similar = (codec_name(label.removeprefix("x-")), codec_name(re.sub(r"[^a-z0-9]", "", label)))
        chain = ("utf-8", *(c for c in similar if c))
    else:
        chain = _READINGS.get(codec, (codec,))
    # Valid UTF-8 is almost never an accident: the last try before replacing characters.
    chain = chain if "utf-8" in chain else (*chain, "utf-8")
    for name in chain:
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        if name != chain[0] or codec is None:
            defects.append(f"declared {label or 'no charset'}, decoded as {name}")
        return text
    defects.append(f"declared {label or 'no charset'}, undecodable bytes replaced")
    return data.decode(chain[0], "replace")


# --- headers --------------------------------------------------------------------------------

_WORD = re.compile(r"=\?([^?\s*]+)(\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes of one RFC 2047 encoded-word's text, or None when it is not decodable."""
    if encoding in "bB":
        try:
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
