"""HTML-only mail as readable text (inscriptis: blocks, lists and tables kept)."""

from __future__ import annotations

import re

from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig
from lxml.etree import LxmlError

_HTML_CONFIG = ParserConfig(css=CSS_PROFILES["strict"], display_links=True)
_LINK = re.compile(r"\[([^\[\]\n]*)\]\(([^()\s]*)\)")
META_CHARSET = re.compile(rb"""(?i)<meta[^>]+charset=["']?([\w.:-]+)""")


def _link(m: re.Match) -> str:
    """An inscriptis "[text](url)" as "text (url)", or just the text when the URL adds nothing."""
    label, url = m[1].strip(), m[2]
    if not url.startswith(("http://", "https://")) or url.rstrip("/") == label.rstrip("/"):
        return label
    return f"{label} ({url})" if label else ""


def tidy(text: str) -> str:
    """Unix newlines, no trailing blanks on lines, at most one empty line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: no tags, styles or scripts; blocks, lists, tables kept."""
    try:
        text = get_text(html.replace("\x00", ""), _HTML_CONFIG)
    except (ValueError, LxmlError):  # lxml refuses some broken documents: strip tags instead
        text = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>|<[^>]*>", " ", html)
    return tidy(_LINK.sub(_link, text))
