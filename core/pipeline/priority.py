"""Priority from rules, with the reason a conversation shows for it.

A rule of ``priority.rules`` names a level and conditions: tags (urgent terms are tag rules:
"bị trừ tiền", "被盗", "charged twice"), the language, the channel, the customer's tier, and
repeated messages within a short time. The highest level of the rules that hold wins; among
equal levels, the first rule listed. A conversation's priority only rises, and it keeps the
reason of the rule that last raised it (``priority_why`` on ``td:conv:{id}``).

Tags, language and channel are known here; the customer's tier and how often they wrote
are known only to the store, inside the ingest script. So :meth:`PriorityRules.judge` decides
what the message alone decides and hands the script the rules that could still beat it, best
first (:attr:`Priority.pending`); the script takes the first of those that holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.core.config import PriorityRule, PrioritySection

SEP, RS = "\x1f", "\x1e"


@dataclass(frozen=True, slots=True)
class Priority:
    level: int
    reason: str  # "" at level 0 with no rule
    pending: str = ""  # the ingest script's argument: rules about the customer or repeats


def matches_language(wanted: list[str], language: str | None) -> bool:
    """``zh`` in a rule covers ``zh-Hans`` and ``zh-Hant``; ``zh-Hant`` covers only itself."""
    if language is None:
        return False
    return language in wanted or language.partition("-")[0] in wanted


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class PriorityRules:
    """The configured priority rules, applied to one message at a time."""

    def __init__(self, cfg: PrioritySection) -> None:
        self.rules = cfg.rules
        self._encoded: dict[tuple[int, str], str] = {}  # (rule, why) → the script's argument

    def judge(self, tags: list[str], fired: dict[str, tuple[int, str]], language: str | None,
              channel: str, base: tuple[int, str] = (0, "")) -> Priority:
        """The priority the message decides (``base``: what routing gave, with its reason;
        a priority rule of the same level wins over it), and the rules the ingest script
        must still judge."""
        best_level, best_why, best_at = base[0], base[1], len(self.rules)
        later: list[tuple[int, int, str]] = []  # (level, index, encoded rule)
        tagset = set(tags)
        for i, rule in enumerate(self.rules):
            why = self._holds(rule, tagset, fired, language, channel)
            if why is None:
                continue
            if rule.customer_tier or rule.repeated:
                enc = self._encoded.get((i, why))
                if enc is None:  # a handful of distinct reasons per rule: kept
                    enc = self._encoded.setdefault((i, why), self._encode(rule, why))
                later.append((rule.level, i, enc))
            elif rule.level > best_level or (rule.level == best_level and best_at == len(self.rules)):
                best_level, best_why, best_at = rule.level, f"{rule.name}: {why}", i
        # only the rules that would beat the message's own best, best first
        pending = [enc for level, i, enc in sorted(later, key=lambda x: (-x[0], x[1]))
                   if level > best_level or (level == best_level and i < best_at)]
        return Priority(best_level, best_why, RS.join(pending))

    @staticmethod
    def _holds(rule: PriorityRule, tagset: set[str], fired: dict[str, tuple[int, str]],
               language: str | None, channel: str) -> str | None:
        """Why the rule's message conditions hold ("" when it has none), or None."""
        why: list[str] = []
        if rule.tags_any:
            hit = next((t for t in rule.tags_any if t in tagset), None)
            if hit is None:
                return None
            kw = fired.get(hit)
            why.append(f'tag {hit} ("{kw[1]}")' if kw else f"tag {hit}")
        if rule.languages:
            if not matches_language(rule.languages, language):
                return None
            why.append(f"language {language}")
        if rule.channels:
            if channel not in rule.channels:
                return None
            why.append(f"channel {channel}")
        return ", ".join(why)

    @staticmethod
    def _encode(rule: PriorityRule, why: str) -> str:
        """``tiers␟messages␟within ms␟level␟reason`` (core/lua/ingest.lua ARGV[23])."""
        parts = [why] if why else []
        if rule.customer_tier:
            parts.append("customer tier " + "/".join(rule.customer_tier))
        rep = rule.repeated
        if rep:
            parts.append(f"{rep.messages} messages within {_duration(rep.within)}")
        reason = f"{rule.name}: {', '.join(parts)}"
        return SEP.join([",".join(rule.customer_tier), str(rep.messages) if rep else "",
                         str(int(rep.within * 1000)) if rep else "", str(rule.level),
                         reason.replace(SEP, " ").replace(RS, " ")])


def settle(p: Priority, tier: str | None, recent: int) -> Priority:
    """What the ingest script does with ``p.pending``, for ``tongdai rules test``: the first
    pending rule that holds for a customer of ``tier`` who wrote ``recent`` messages (this one
    included) within each rule's window since an agent last replied."""
    for enc in filter(None, p.pending.split(RS)):
        tiers, n, _within, level, reason = enc.split(SEP)
        if tiers and (tier or "") not in tiers.split(","):
            continue
        if n and recent < int(n):
            continue
        return Priority(int(level), reason)
    return Priority(p.level, p.reason)
