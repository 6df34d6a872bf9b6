"""What is new in a reply: the quoted earlier thread and the signature cut off.

Agents read ``text``; the whole body stays in ``full_text``. Mail clients mark the old thread
in many ways (">" lines, "On ... wrote:", Outlook header blocks, Chinese and Vietnamese
variants); the first such mark after some new text ends the new text. Marks above any new
text (bottom-posting) are skipped over instead, so the answer below them is kept.
"""

from __future__ import annotations

import re

_QUOTE = re.compile(r"^\s*>")
# An attribution line ends with the verb and a colon; Gmail may wrap it over two lines.
_ATTRIBUTION = re.compile(
    r"(?i)(wrote|đã viết|da viet|a écrit|schrieb|escribió|写道|寫道)\s*[:：]\s*$")
_LEAD = re.compile(r"(?i)^\s*(On|Vào|Vao|Le|Am|El|在|於|于)\s")
_FROM_LABEL = re.compile(r"(?i)^\s*\*?(From|Từ|Người gửi|发件人|發件人|寄件者|寄件人)\*?\s*[:：]")
_OTHER_LABEL = re.compile(
    r"(?i)^\s*\*?(Sent|Date|To|Cc|Subject|Gửi|Đã gửi|Ngày|Đến|Tới|Chủ đề|Tiêu đề|发送时间|日期"
    r"|时间|收件人|抄送|主题|寄件日期|收件者|副本|主旨)\*?\s*[:：]")
_SEPARATOR = re.compile(
    r"(?i)^\s*-{2,}\s*(Original Message|Original|原始邮件|原始郵件|Thư gốc|Tin nhắn gốc)"
    r"\s*-{2,}\s*$")
_UNDERLINE = re.compile(r"^\s*_{10,}\s*$")
_DEVICE = r"(iPhone|iPad|Android|Samsung|Galaxy|Huawei|Xiaomi|BlackBerry|mobile|phone|điện thoại)"
_SIGNOFF = re.compile(
    rf"(?i)^\s*(Sent from my {_DEVICE}.*|Sent from (Outlook|Yahoo Mail|Mail for Windows).*"
    rf"|Get Outlook for (iOS|Android).*|(Được )?G[ửở]i từ {_DEVICE}.*"
    r"|发自我的.{0,20}|發自我的.{0,20}|从我的.{0,20}发送|來自我的.{0,20})\s*$")
_RULE = re.compile(r"^\s*[-_=*]{3,}\s*$")


def _is_signature(line: str) -> bool:
    """True for the RFC 3676 signature delimiter "-- " (often sent without its space)."""
    return line.rstrip("\r") in ("-- ", "--")


def _next_text(lines: list[str], i: int) -> str:
    """The first non-blank line at or after ``i``, or ""."""
    return next((line for line in lines[i:] if line.strip()), "")


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (0, 1 or 2) an attribution such as "On ..., X wrote:" takes at ``i``."""
    for size in (1, 2):
        if size == 2 and not _LEAD.match(lines[i]):
            break
        joined = " ".join(lines[i:i + size])
        if i + size > len(lines) or len(joined) > 400 or not _ATTRIBUTION.search(joined):
            continue
        # A bare "Name wrote:" counts only above a quote; dated forms stand on their own.
        if _QUOTE.match(_next_text(lines, i + size)):
            return size
        if re.search(r"\d", joined) and (_LEAD.match(joined) or "@" in joined):
            return size
    return 0


def _starts_thread(lines: list[str], i: int) -> bool:
    """True when line ``i`` opens a forwarded/quoted header block or its separator."""
    line = lines[i]
    if _SEPARATOR.match(line) or _SIGNOFF.match(line) or _is_signature(line):
        return True
    if _UNDERLINE.match(line):
        return bool(_FROM_LABEL.match(_next_text(lines, i + 1)))
    if _FROM_LABEL.match(line):
        # Outlook's "From: / Sent: / To: / Subject:" block: a From line alone is not enough.
        return sum(bool(_OTHER_LABEL.match(x)) for x in lines[i + 1:i + 7]) >= 2
    return False


def _tidy(lines: list[str]) -> str:
    """Join ``lines``, trimming trailing spaces, separator rules at the end and blank runs."""
    lines = [line.rstrip() for line in lines]
    while lines and (not lines[-1] or _RULE.match(lines[-1])):
        lines.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def new_text(text: str) -> str:
    """The new part of ``text``, or "" when the mail only quotes or forwards (an agent's
    reply by mail must then send nothing: see core/agentmail.py)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if _starts_thread(lines, i):
            break
        size = _attribution(lines, i) or (1 if _QUOTE.match(lines[i]) else 0)
        if size and any(line.strip() for line in kept):
            break
        if size:
            i += size  # quoted or attributed above the answer (bottom-posting): skip it
            continue
        kept.append(lines[i])
        i += 1
    return _tidy(kept)


def strip_quoted(text: str) -> str:
    """The new part of ``text``: quoted thread, attributions and signature removed."""
    new = new_text(text)
    if new:
        return new
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Nothing new (a bare forward or a whole-quote mail): keep it all but the signature.
    cut = next((n for n, line in enumerate(lines) if _is_signature(line)), len(lines))
    return _tidy(lines[:cut]) or _tidy(lines)
