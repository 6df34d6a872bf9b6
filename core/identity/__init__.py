"""Identity: who a customer is across channels.

``identifiers`` (phone numbers and mailboxes in one canonical form), ``graph`` (claims an event
carries, link codes, reversible merges and splits, suggestions) and ``rotation`` (re-sealing
stored customer data under a new data key).

May import: the plumbing in ``tongdai.core`` only. Never ``pipeline`` or ``workspace``.
"""
