"""Routing: which team queue a new conversation goes to, and how urgent it is."""

from __future__ import annotations

from dataclasses import dataclass

from tongdai.core.config import RoutingSection


@dataclass(frozen=True, slots=True)
class Route:
    queue: str
    priority: int


class Router:
    """First matching rule wins; the priority is the highest of all matching rules."""

    def __init__(self, cfg: RoutingSection) -> None:
        self.cfg = cfg

    def route(self, channel_id: str, tags: list[str], language: str | None) -> Route:
        queue: str | None = None
        priority = 0
        tagset = set(tags)
        for rule in self.cfg.rules:
            if rule.tags_any and not tagset.intersection(rule.tags_any):
                continue
            if rule.languages and language not in rule.languages:
                continue
            if rule.channels and channel_id not in rule.channels:
                continue
            if queue is None:
                queue = rule.queue
            priority = max(priority, rule.priority)
        return Route(queue or self.cfg.default_queue, priority)
