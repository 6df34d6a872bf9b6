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
# Invisible characters newsletters pad with (the "preheader" trick repeats "&#847;&zwnj;&nbsp;"
# hundreds of times so mail clients show no body text after the teaser).
_INVISIBLE = "\u034f\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"
# Runs worth a look: two or more blanks or invisibles, or one blank that is not a space.
_PADDING = re.compile(f"(?:[^\\S\\n]|[{_INVISIBLE}]){{2,}}|[^\\S\\n ]")
_LAYOUT = 8  # blanks beyond this are layout (table columns padded to a long cell), not indent


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


def _compact_line(line: str) -> str:
    """One line with layout padding squeezed: invisible runs and long blank runs go (a gap
    between two columns keeps three spaces); short indents (lists) and gaps stay."""
    def squeeze(m: re.Match) -> str:
        run = m[0]
        if run.strip(" ") == "" and len(run) <= _LAYOUT:
            return run
        if m.start() == 0 or m.end() == len(line) or not any(c.isspace() for c in run):
            return ""
        return "   " if len(run) > _LAYOUT else " "
    return _PADDING.sub(squeeze, line)


def compact(text: str) -> str:
    """Text of an HTML layout without its padding: a newsletter's table cells are padded to
    the widest cell of their column and its teaser to hundreds of invisible characters, so
    the first words sat behind pages of blanks. Single zero-width joiners inside words
    (emoji, Persian) are kept."""
    return "\n".join(_compact_line(line) for line in text.split("\n"))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: no tags, styles or scripts; blocks, lists, tables kept."""
    try:
        text = get_text(html.replace("\x00", ""), _HTML_CONFIG)
    except (ValueError, LxmlError):  # lxml refuses some broken documents: strip tags instead
        text = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>|<[^>]*>", " ", html)
    return tidy(compact(_LINK.sub(_link, text)))
