"""The pipeline: one message from the webhook's raw event to the customer's channel and back.

``rawlog`` (the durable raw event streams, dead letters) → ``ingest`` (parse, tag, route, store
in one Lua script per event) → ``store`` (reads and simple state changes) → ``outbound``
(replies, windows, sends); ``tagging``, ``routing``, ``sla`` (due times the ingest script
sets, breaches), ``mail`` (threading), ``feed`` (the change feed every change writes to), and
``intercept`` — the hook through which later layers take events that are not a customer's
message (agents answering from a staff group or by mail).

May import: plumbing and ``identity``. Never ``workspace``: it registers on ``intercept`` and
on ``feed``'s reactors instead.
"""
