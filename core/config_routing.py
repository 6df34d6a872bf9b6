"""Checks across routing rules and teams' tiers that one section's model cannot make alone.

``core/config.py`` runs :func:`check` after validating the sections: every mistake is a
:class:`ConfigError` with the file, the key and the fix, like the rest of the configuration.
"""

from __future__ import annotations

from itertools import pairwise

from tongdai.core.config_sections import HubConfig, TeamSection
from tongdai.core.errors import ConfigError


def check(hub: HubConfig, path: str) -> list[ConfigError]:
    """Routing rules and the tier ladder: what ``load_config`` must refuse."""
    errors: list[ConfigError] = []
    for i, rule in enumerate(hub.routing.rules):
        if rule.conditional and rule.priority:
            errors.append(ConfigError(
                path, f"routing.rules[{i}].priority", "a rule with priority_min or customer "
                "conditions cannot also give a priority (the priority is settled before those "
                "rules are judged)", "remove priority here and add a priority.rules entry "
                "(customer_tier: [...]) for it"))
    teams = {t.id: t for t in hub.teams}
    queue_tier: dict[str, TeamSection] = {}
    for t in hub.teams:
        for q in t.queues:
            other = queue_tier.setdefault(q, t)
            if other.tier != t.tier:
                errors.append(ConfigError(
                    path, f"teams[{t.id}].queues", f"queue {q!r} is worked by team "
                    f"{other.id} (tier {other.tier}) and this team (tier {t.tier}): a queue "
                    "belongs to one tier", "give each tier its own queues"))
    loop = _cycle(teams)
    if loop:  # (its tiers cannot all rise: said once, as the circle)
        errors.append(ConfigError(
            path, f"teams[{loop[0]}].escalates_to", "escalation goes round in a circle: "
            + " → ".join(loop), "a team escalates only to teams of a higher tier"))
    in_loop = set(pairwise(loop))
    for t in hub.teams:
        where = f"teams[{t.id}].escalates_to"
        for j, step in enumerate(t.escalates_to):
            up = teams.get(step.team)
            if up is None:
                errors.append(ConfigError(path, f"{where}[{j}].team", f"no team {step.team!r}",
                                          "name a team id from teams"))
            elif up.tier <= t.tier and (t.id, up.id) not in in_loop:
                errors.append(ConfigError(
                    path, f"{where}[{j}].team", f"team {up.id!r} is tier {up.tier}, not above "
                    f"this team's tier {t.tier}", f"escalate to a team of a higher tier, or "
                    f"raise teams[{up.id}].tier"))
            elif not up.queues:
                errors.append(ConfigError(path, f"{where}[{j}].team", f"team {up.id!r} works "
                                          "no queue", f"give teams[{up.id}].queues a queue"))
        last = t.escalates_to[-1] if t.escalates_to else None
        if last is not None and (last.conditional or last.tags_any or last.languages
                                 or last.channels):
            errors.append(ConfigError(
                path, f"{where}[{len(t.escalates_to) - 1}]", "the last step has conditions: "
                "a conversation none of the steps fits could not be escalated",
                "end the list with a step without conditions (a bare team id)"))
    return errors


def _cycle(teams: dict[str, TeamSection]) -> list[str]:
    """A loop of escalates_to edges (team ids, the first repeated at the end), or []."""
    done: set[str] = set()

    def walk(tid: str, path: list[str]) -> list[str]:
        if tid in path:
            return path[path.index(tid):] + [tid]
        if tid in done or tid not in teams:
            return []
        for step in teams[tid].escalates_to:
            found = walk(step.team, [*path, tid])
            if found:
                return found
        done.add(tid)
        return []

    for tid in teams:
        found = walk(tid, [])
        if found:
            return found
    return []
