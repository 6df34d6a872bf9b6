"""One message's classification: language, tags, queue, and priority with its reason.

What ingest stores and routing uses, in one place (``tongdai rules test`` shows the same
thing): :class:`Classification` carries the language (``vi``, ``en``, ``zh-Hans``,
``zh-Hant``, ``zh``), the tags (keyword tags, then ``lang:`` tags), which rule and keyword
fired for each tag, the queue and the routing rule that chose it, and the priority with the
reason a conversation shows for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tongdai.core.config import HubConfig
from tongdai.core.hub import Hub
from tongdai.core.pipeline.priority import RS, SEP, Priority, PriorityRules
from tongdai.core.pipeline.routing import Route, Router
from tongdai.core.pipeline.tagging import Tagger, Tagging


@dataclass(slots=True)
class Classification:
    language: str | None
    tags: list[str]
    queue: str
    priority: int
    reason: str  # why this priority: "money-lost: tag money-lost (\"bị trừ tiền\")"
    pending: str = ""  # priority rules the ingest script judges (core/pipeline/priority.py)
    fired: dict[str, tuple[int, str]] = field(default_factory=dict)  # tag → (rule, keyword)
    route: Route | None = None
    language_why: str = ""
    routes: str = ""  # routing rules the ingest script judges (core/pipeline/routing.py)


class Classifier:
    """Tagging, routing and priority rules of one configuration, built once per hub."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.tagger = Tagger(config.tagging)
        self.router = Router(config.routing)
        self.priority = PriorityRules(config.priority)

    def classify(self, text: str | None, channel: str, subject: str | None = None
                 ) -> Classification:
        """Classify a customer's message arriving on ``channel`` (``text`` None: a message
        with no text, or none of the customer's: channel rules still apply); a mail's
        ``subject`` counts for the keywords, not the language."""
        t = self.tagger.classify(text, subject) if text or subject else Tagging(None, [])
        route = self.router.route(channel, t.tags, t.language)
        base = (route.priority, self._route_reason(route))
        p: Priority = self.priority.judge(t.tags, t.fired, t.language, channel, base)
        if route.pending:  # rules on the customer or the priority: what is known decides
            ceiling = max([p.level] + [int(e.split(SEP)[3]) for e in p.pending.split(RS) if e])
            route = self.router.settle(route, p.level, ceiling)
        return Classification(t.language, t.tags, route.queue, p.level, p.reason, p.pending,
                              t.fired, route, t.language_why, self.router.lua_arg(route))

    def _route_reason(self, route: Route) -> str:
        if not route.priority or route.priority_rule is None:
            return ""
        rule = self.config.routing.rules[route.priority_rule]
        return f"routing rule {route.priority_rule + 1} (queue {rule.queue})"


def classifier(hub: Hub) -> Classifier:
    """The hub's classifier (its language detector is shared by the whole process)."""
    return hub.memo("classifier", lambda: Classifier(hub.config.hub))
