"""The agent workspace: what agents, supervisors and admins do with the conversations.

``users`` and ``tokens`` (who may log in), ``access`` (who sees what), ``audit``,
``assignment``, ``presence``, ``inbox`` (with ``inbox_index``: filters and the index walk;
``search``), ``workflow`` (notes, priority, status, snooze), ``timeline`` (the system lines
of who did what), ``tiers`` (escalation up and down the teams' tiers), ``canned``,
``staffgroup`` (Telegram staff group), ``agentmail`` (agents answering by mail), ``hooks``
(outgoing webhooks; ``hookdelivery`` sends them, ``hookdestinations`` says where they may go),
``sla_actions`` (what an SLA warning or breach sets off), ``kpis`` / ``kpi_report`` (support
KPIs counted from the feed, and their reports), ``privacy`` (export and erase a
customer: it reaches every domain's data, so it lives at the top), ``backup`` /
``backup_restore`` / ``backup_schedule`` (copies of the whole hub, restored and checked),
``spikes`` / ``spike_alerts`` (a tag or channel far above its usual volume, and its alerts),
``pushsubs`` / ``push`` (Web Push to agents' devices with the console closed).

May import: plumbing, ``identity`` and ``pipeline``.

Importing this package registers the workspace on the pipeline's hooks (the feed's reactors,
the ingest interceptors). Every process entry point (web app, workers, CLI) imports it.
"""
from tongdai.core.pipeline import sla, sla_resolution  # noqa: F401  (ticks and a reactor)
from tongdai.core.selfservice import bot, surveys  # noqa: F401  (bot; CSAT/NPS, status)
from tongdai.core.workspace import (  # noqa: F401  (registration on import)
    agentmail,
    assignment,
    backup_schedule,
    broadcast_optout,
    hooks,
    kpis,
    lookup_rules,
    push,
    search_feed,
    sla_actions,
    spike_alerts,
    spikes,
    staffgroup,
    workflow,
)
