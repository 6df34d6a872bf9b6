"""Routing: which team queue a new conversation goes to, and how urgent it is.

``routing.rules`` are tried in order and the first that holds chooses the queue; none holds →
``routing.default_queue`` (so a route always exists). A rule's conditions: ``tags_any``,
``languages``, ``channels`` (the message decides these, here), ``priority_min`` (the
conversation's priority once every priority rule applied) and ``customer`` attributes (e.g.
``{tier: [vip]}``, read from ``td:customer:{id}``). The last two are known for certain only
inside the ingest script (a priority rule on the customer's tier may still raise the
priority there), so :meth:`Router.route` hands the script the rules before the first one it
can decide, in order (:meth:`Router.lua_arg`); the script takes the first that holds, else
the decided queue. The same conditions pick an escalation's target (core/workspace/tiers.py)
through :func:`holds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tongdai.core.config import RoutingSection
from tongdai.core.config_sections import RouteConditions, RouteRule
from tongdai.core.pipeline.priority import matches_language

SEP, RS, ATTR_SEP, VALUE_SEP = "\x1f", "\x1e", "\x1d", "\x1c"


@dataclass(frozen=True, slots=True)
class Route:
    queue: str
    priority: int
    rule: int | None = None  # the rule that chose the queue (0-based); None: the default
    priority_rule: int | None = None  # the rule that gave the priority
    # rules listed before ``rule`` that hold for the message but also name the customer or a
    # priority_min: the ingest script takes the first of them that holds, else ``queue``
    pending: tuple[int, ...] = ()


def message_holds(c: RouteConditions, tags: set[str], language: str | None,
                  channel: str) -> bool:
    """The conditions the message decides: tags, language, channel."""
    if c.tags_any and not tags.intersection(c.tags_any):
        return False
    if c.languages and not matches_language(c.languages, language):
        return False
    return not (c.channels and channel not in c.channels)


def holds(c: RouteConditions, tags: set[str], language: str | None, channel: str,
          priority: int, customer: Mapping[str, str]) -> bool:
    """Every condition, with the facts known (a conversation being escalated)."""
    if not message_holds(c, tags, language, channel):
        return False
    if c.priority_min is not None and priority < c.priority_min:
        return False
    return all(customer.get(k) in v for k, v in c.customer.items())


class Router:
    """First matching rule wins; the priority is the highest of all matching rules."""

    def __init__(self, cfg: RoutingSection) -> None:
        self.cfg = cfg

    def route(self, channel_id: str, tags: list[str], language: str | None) -> Route:
        """The queue and priority for a message; a rule's ``languages: [zh]`` covers
        ``zh-Hans`` and ``zh-Hant``."""
        queue: str | None = None
        chose = by = None
        priority = 0
        pending: list[int] = []
        tagset = set(tags)
        for i, rule in enumerate(self.cfg.rules):
            if not message_holds(rule, tagset, language, channel_id):
                continue
            if rule.conditional:  # no priority of its own (core/config_routing.py)
                if queue is None:
                    pending.append(i)
                continue
            if queue is None:
                queue, chose = rule.queue, i
            if by is None or rule.priority > priority:
                priority, by = rule.priority, i
        return Route(queue or self.cfg.default_queue, priority, chose, by, tuple(pending))

    def settle(self, route: Route, level: int, ceiling: int) -> Route:
        """Decide what the priority decides already: it is at least ``level`` and at most
        ``ceiling`` (the best pending priority rule). Rules it rules out are dropped; the
        first rule whose only doubt was the priority, when it surely holds, is chosen."""
        keep: list[int] = []
        for i in route.pending:
            rule = self.cfg.rules[i]
            pmin = rule.priority_min or 0
            if pmin > ceiling:
                continue
            if pmin <= level and not rule.customer:
                return Route(rule.queue, route.priority, i, route.priority_rule, tuple(keep))
            keep.append(i)
        return Route(route.queue, route.priority, route.rule, route.priority_rule, tuple(keep))

    def decide(self, route: Route, priority: int, customer: Mapping[str, str]) -> Route:
        """What the ingest script decides, for ``tongdai rules test``."""
        for i in route.pending:
            rule = self.cfg.rules[i]
            if holds(rule, set(), None, "", priority, customer):
                return Route(rule.queue, route.priority, i, route.priority_rule)
        return Route(route.queue, route.priority, route.rule, route.priority_rule)

    def lua_arg(self, route: Route) -> str:
        """``queue␟priority_min␟attr=v1␜v2␝attr2=v3`` per pending rule, joined by ␞
        (core/lua/ingest.lua ARGV[26])."""
        return RS.join(_encode(self.cfg.rules[i]) for i in route.pending)


def _encode(rule: RouteRule) -> str:
    attrs = ATTR_SEP.join(f"{k}={VALUE_SEP.join(v)}" for k, v in rule.customer.items())
    pmin = "" if rule.priority_min is None else str(rule.priority_min)
    return SEP.join([rule.queue, pmin, attrs])
