"""Routing: which team queue a new conversation goes to, and how urgent it is."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.core.config import RoutingSection
from tongdai.core.pipeline.priority import matches_language


@dataclass(frozen=True, slots=True)
class Route:
    queue: str
    priority: int
    rule: int | None = None  # the rule that chose the queue (0-based); None: the default
    priority_rule: int | None = None  # the rule that gave the priority


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
        tagset = set(tags)
        for i, rule in enumerate(self.cfg.rules):
            if rule.tags_any and not tagset.intersection(rule.tags_any):
                continue
            if rule.languages and not matches_language(rule.languages, language):
                continue
            if rule.channels and channel_id not in rule.channels:
                continue
            if queue is None:
                queue, chose = rule.queue, i
            if by is None or rule.priority > priority:
                priority, by = rule.priority, i
        return Route(queue or self.cfg.default_queue, priority, chose, by)
