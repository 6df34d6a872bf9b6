"""Phone numbers and mail addresses in one canonical form, so equal identifiers meet.

Phones become E.164 with ``phonenumbers`` (Google's libphonenumber data): ``0912 345 678``,
``+84 912 345 678`` and ``84912345678`` are one number for a Vietnamese shop; a number that is
not valid in the configured regions is kept as typed digits, never matched loosely. Mail
addresses are lower-cased; dots and ``+tags`` are dropped only where the provider defines
them as meaningless (Gmail).

Customers also type their numbers and addresses into messages ("số của tôi là 0912…"):
:func:`typed_claims` finds them. Such claims are never proof: they become merge suggestions.
"""

from __future__ import annotations

import re

import phonenumbers

_GMAIL = frozenset({"gmail.com", "googlemail.com"})
# A run of digits, spaces, dots, dashes and parentheses, optionally after "+", 9-15 digits.
_PHONE_TEXT = re.compile(r"(?<![\w+])(\+?\d[\d .\-()]{7,18}\d)(?!\w)")
_EIGHT_DIGITS = re.compile(r"\d(?:[ .\-()]?\d){7}")
_EMAIL_TEXT = re.compile(r"(?<![\w.+-])([\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+)")


def phone(value: str, regions: tuple[str, ...] = ("VN",)) -> str | None:
    """E.164 form of a phone number valid in one of ``regions`` (tried in order), else None."""
    for region in regions:
        try:
            n = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
    return None


def email(value: str) -> str | None:
    """A mail address in its canonical form, or None when it is not one."""
    local, at, domain = value.strip().strip("<>").rpartition("@")
    if not at or not local or "." not in domain:
        return None
    local, domain = local.lower(), domain.lower().rstrip(".")
    if domain in _GMAIL:  # Gmail ignores dots and everything after "+"
        local, domain = local.split("+", 1)[0].replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def normalise(kind: str, value: str, regions: tuple[str, ...] = ("VN",)) -> str:
    """The canonical form of an identifier; what cannot be understood is kept, trimmed (it
    still matches exactly the same text, nothing else)."""
    if kind == "phone":
        return phone(value, regions) or re.sub(r"[^\d+]", "", value)
    if kind == "email":
        return email(value) or value.strip().lower()
    return value.strip()


def find_phones(text: str, regions: tuple[str, ...] = ("VN",)) -> list[tuple[int, int, str]]:
    """(start, end, E.164) of each phone number valid in ``regions`` written in the text; a run
    of digits that is not one is tried without its last space-separated parts ("0987.654.321
    1,5tr": the number, then the amount)."""
    out = []
    for m in _PHONE_TEXT.finditer(text):
        run = m.group(1)
        ends = [len(run)] + [s.start() for s in reversed(list(re.finditer(r" +", run)))]
        for end in ends:
            p = phone(run[:end], regions)
            if p:
                out.append((m.start(1), m.start(1) + end, p))
                break
    return out


def typed_claims(text: str | None, regions: tuple[str, ...] = ("VN",)) -> list[tuple[str, str]]:
    """(kind, canonical value) of the phone numbers and addresses written in a message."""
    if not text or len(text) > 4000:
        return []
    out: list[tuple[str, str]] = []
    # cheap gates first: this runs on every inbound message (ingest hot path)
    emails = _EMAIL_TEXT.finditer(text) if "@" in text else ()
    phones = _PHONE_TEXT.finditer(text) if _EIGHT_DIGITS.search(text) else ()
    for m in emails:
        e = email(m.group(1))
        if e and ("email", e) not in out:
            out.append(("email", e))
    for m in phones:
        p = phone(m.group(1), regions)
        if p and ("phone", p) not in out:
            out.append(("phone", p))
    return out
