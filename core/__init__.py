"""tongdai.core — the support domain.

Layers, each importing only the ones before it (``tests/test_layers.py`` enforces this, function-
level imports included):

1. **plumbing** — the modules directly in this package: ``errors`` (one hierarchy), ``keys``
   (every Redis key), ``config``, ``registry`` (adapters by name, entry point or path), ``hub``
   (one process's view: config + Redis + adapters), ``clock`` (Redis ``TIME``), ``models``,
   ``scripts`` + ``lua/`` (every Lua script, together), ``crypto``, ``subjects`` (per-identity
   keys), ``blobs``, ``credentials``, ``redis_server`` (the embedded Redis).
2. ``identity`` — canonical identifiers, claims, link codes, merges and splits, key rotation.
3. ``pipeline`` — raw log → ingest → store → outbound; tagging, routing, SLA due times, the
   change feed. Offers hooks (``pipeline.intercept``) that later layers register on.
4. ``workspace`` — what agents and admins do: users, access, assignment, inbox, workflow,
   canned replies, presence, staff group, agents' mail, outgoing webhooks, audit, privacy.

``cli`` sits on top of all of them, beside ``tongdai.webhooks`` and ``tongdai.worker``.
"""
