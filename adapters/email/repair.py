"""Mail as broken software writes it, read the way help desks read it: a banner line above the
headers, a header continuation line that lost its indent, an address without angle brackets,
attachment names in raw 8-bit or RFC 2231 form. Each repair is recorded as a defect."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from urllib.parse import unquote_to_bytes

_BLANK_LINE = re.compile(rb"\n\r?\n")
# A header line, as email.feedparser recognises one (without its mbox "From " case).
_HEADER = re.compile(rb"[!-9;-~]+:")
# Names that show a header block is really going on below a line the parser would stop at.
_KNOWN = frozenset({
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"received", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"return-path", b"delivered-to", b"sender",
    b"reply-to", b"in-reply-to", b"references"})


def _known(line: bytes) -> bool:
    """Whether ``line`` starts a header a mail has (or any X- header)."""
    name = line.partition(b":")[0].strip().lower()
    return bool(_HEADER.match(line)) and (name in _KNOWN or name.startswith(b"x-"))


def mend_headers(raw: bytes, defects: list[str]) -> bytes:
    """``raw`` with its header block readable: a first line that is no header (a gateway's
    banner, a POP3 "+OK", an mbox ">From ") dropped when headers follow it, and a line
    without indent inside the header block joined to the header above it (the parser would
    take it for the body's start and lose every header below). mbox "From " lines are the
    parser's own business."""
    blank = _BLANK_LINE.search(raw)  # only the header block is looked at: bodies are big
    head, body = (raw[:blank.start() + 1], raw[blank.start() + 1:]) if blank else (raw, b"")
    lines = head.splitlines(keepends=True)
    if (len(lines) > 1 and not _HEADER.match(lines[0]) and not lines[0].startswith(b"From ")
            and _known(lines[1])):
        defects.append("a line before the headers was skipped")
        lines = lines[1:]
    for i in range(1, len(lines)):
        line = lines[i]
        if _HEADER.match(line) or line[:1] in (b" ", b"\t"):
            continue
        if any(_known(later) for later in lines[i + 1:]):
            lines[i] = b" " + line
            defects.append("an unindented header line was joined to the header above it")
    return b"".join(lines) + body


_ADDR = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")


def bare_addresses(value: str) -> list[tuple[str, str]]:
    """(name, address) from a header like ``Name bare@address`` (no angle brackets), which
    the standard parser runs together into one unusable address."""
    found = _ADDR.findall(value)
    if len(found) != 1:
        return [("", a) for a in found]
    name = re.sub(r'[()<>"]', " ", value.replace(found[0], " "))
    return [(" ".join(name.split()), found[0])]


# One parameter of a MIME header: name, RFC 2231 section and "*" (percent-encoded), value.
_PARAM = re.compile(r';\s*([^\s=;*]+)(?:\*(\d+))?(\*)?\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _param(value: str, want: str, undeclared: Callable[[bytes], str],
           decode: Callable[[bytes, str], str]) -> str | None:
    """Parameter ``want`` of one raw header value, RFC 2231 sections joined and decoded."""
    plain, sections = None, []
    for m in _PARAM.finditer(value):
        if m[1].lower() != want:
            continue
        text = m[4].strip()
        if text.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        if m[2] is None and m[3] is None:
            plain = text
        else:
            sections.append((int(m[2] or 0), bool(m[3]), text))
    if not sections:
        if plain is None:
            return None
        data = plain.encode("utf-8", "surrogateescape")
        return plain if data.isascii() else undeclared(data)
    data, charset = b"", ""
    for n, encoded, text in sorted(sections):
        if encoded and n == 0 and text.count("'") >= 2:
            charset, _lang, text = text.split("'", 2)
        data += unquote_to_bytes(text) if encoded else text.encode("utf-8", "surrogateescape")
    return decode(data, charset) if charset else undeclared(data)


def raw_filename(part: Message, undeclared: Callable[[bytes], str],
                 decode: Callable[[bytes, str], str]) -> str | None:
    """A part's file name read from its raw headers (Content-Disposition ``filename``, else
    Content-Type ``name``). The email package replaces 8-bit and wrongly labelled bytes with
    U+FFFD before anyone can re-decode them; here ``undeclared`` reads 8-bit bytes without a
    charset and ``decode`` bytes with their RFC 2231 charset."""
    raw = {k.lower(): re.sub(r"\r?\n(?=[ \t])", "", str(v)) for k, v in reversed(list(part.raw_items()))}
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        if header in raw and (name := _param(raw[header], param, undeclared, decode)):
            return name
    return None
