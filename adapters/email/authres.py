"""Whether our own receiving server vouched for the sender (RFC 8601 Authentication-Results).

Anyone can write an ``Authentication-Results`` header, so only one added by the server we
trust counts: its authserv-id must equal the configured one, and it must sit at the top of the
header block (see ``_trusted_results``). It then counts when it says ``dmarc=pass``, or
``dkim=pass`` for a signing domain aligned with the From domain.
"""

from __future__ import annotations

import re
from email.message import Message

# Second-level labels that act as public suffixes under a country code, so "shop.com.vn" is
# the organisation and "com.vn" is not. A short fixed list for our markets, not the full PSL.
SHORT_SUFFIXES = frozenset({
    "com.vn", "net.vn", "org.vn", "edu.vn", "gov.vn", "biz.vn", "info.vn", "name.vn", "pro.vn",
    "com.cn", "net.cn", "org.cn", "edu.cn", "gov.cn",
    "com.tw", "net.tw", "org.tw", "edu.tw", "gov.tw",
    "com.hk", "net.hk", "org.hk", "edu.hk", "gov.hk",
    "co.uk", "org.uk", "ac.uk", "gov.uk",
    "com.sg", "com.my", "co.th", "co.jp", "co.kr", "com.au", "co.id",
})
_COMMENT = re.compile(r"\([^()]*\)")
_METHOD = re.compile(r"(?i)^\s*([a-z0-9_-]+)\s*=\s*([a-z]+)")
_PROPERTY = re.compile(r"(?i)\b([a-z]+)\.([a-z0-9_-]+)\s*=\s*\"?([^\s\";]+)")


def organisational_domain(domain: str) -> str:
    """The registrable part of ``domain``: its last two labels, three under a short suffix."""
    labels = domain.lower().strip(".").split(".")
    keep = 3 if len(labels) >= 3 and ".".join(labels[-2:]) in SHORT_SUFFIXES else 2
    return ".".join(labels[-keep:])


def aligned(signing_domain: str, from_domain: str) -> bool:
    """True when ``signing_domain`` is the From domain or a parent of it, short of a suffix."""
    d, f = signing_domain.lower().strip("."), from_domain.lower().strip(".")
    if not d or not (f == d or f.endswith("." + d)):
        return False
    # d=com.vn is a "parent" of shop.com.vn but proves nothing about it.
    return organisational_domain(d) == organisational_domain(f)


def _without_comments(value: str) -> str:
    """``value`` with its (possibly nested) RFC 5322 comments removed."""
    while True:
        shorter = _COMMENT.sub(" ", value)
        if shorter == value:
            return value
        value = shorter


def _trusted_results(msg: Message, authserv_id: str) -> list[str]:
    """The results our own server wrote: the Authentication-Results header with our
    authserv-id above the second Received line (one internal relay after the MX allowed),
    without that id; none when it is missing or when there are two.

    Our MX prepends its results above whatever the message brought, so the topmost header
    with our id is its own. A sender talking straight to our MX can plant a copy below it,
    even above any Received line of theirs (they add none): RFC 8601 §5 asks the MX to strip
    such copies, not all do, and two headers with our id mean one of them is forged — we then
    believe neither.
    """
    found, received = [], 0
    for name, value in msg.raw_items():
        lname = name.lower()
        if lname == "received":  # below the second hop everything came from outside
            received += 1
            if received >= 2:
                break
            continue
        if lname != "authentication-results":
            continue
        head, _, rest = _without_comments(str(value)).partition(";")
        tokens = head.split()
        if tokens and tokens[0].lower() == authserv_id.lower():
            found.append(rest)
    return found[:1] if len(found) == 1 else []


def _passes(results: str, from_domain: str) -> bool:
    """True when one result set says dmarc=pass for this From, or an aligned dkim=pass."""
    for resinfo in results.split(";"):
        method = _METHOD.match(resinfo)
        if not method or method.group(2).lower() != "pass":
            continue
        props = {f"{p.lower()}.{k.lower()}": v.lower() for p, k, v in _PROPERTY.findall(resinfo)}
        kind = method.group(1).lower()
        if kind == "dmarc":
            checked = props.get("header.from", from_domain)
            if checked.rpartition("@")[2] == from_domain:
                return True
        elif kind == "dkim":
            signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            if signer and aligned(signer, from_domain):
                return True
    return False


def authenticated(msg: Message, from_addr: str | None, trusted_authserv_id: str | None) -> bool:
    """True only when our trusted server's own results pass DMARC or aligned DKIM for From."""
    if not trusted_authserv_id or not from_addr or "@" not in from_addr:
        return False
    from_domain = from_addr.rpartition("@")[2].lower()
    return any(_passes(r, from_domain) for r in _trusted_results(msg, trusted_authserv_id))
