"""Facebook Messenger adapter: Page webhooks in, the Graph API Send API out.

Meta batches: one POST may carry several ``entry[]``, each with several ``messaging[]`` items,
and every item becomes an event (returning inside the loop drops the rest of a delivery).
Bodies are read as plain dicts: the hub needs a few fields per item, Meta adds new ones often,
and payloads from 2016 still differ from today's. Anything not understood comes back as
``UNSUPPORTED``: kept and counted, never dropped.

The customer is the person's Page-scoped id (PSID). In an echo (a message the Page itself sent,
``message.is_echo``) the Page is the sender, so the customer is the recipient.

Meta pages relied on (stored copies, 2026):
- webhook events: developers.facebook.com/documentation/business-messaging/messenger-platform/
  webhooks/webhook-events (and .../messages, message-echoes, message-deliveries, message-reads,
  message-reactions, message-edits, messaging_postbacks)
- error codes: .../messenger-platform/error-codes; developers.facebook.com/docs/graph-api/
  guides/error-handling
- rate limits: .../messenger-platform/overview/rate-limiting
- windows and tags: .../messenger-platform/policy/ and .../send-messages
- sticker attachment type: .../messenger-platform/changelog/ (Jun 1, 2026)
"""

from tongdai.adapters.facebook.adapter import (
    HUMAN_AGENT_WINDOW_S,
    LEGACY_SIGNATURE_HEADER,
    REPLY_WINDOW_S,
    SIGNATURE_HEADER,
    FacebookAdapter,
)
from tongdai.adapters.facebook.events import JSON, SUBSCRIBED_FIELDS, USER_REF, parse_body
from tongdai.adapters.facebook.send_api import TEXT_LIMIT
from tongdai.adapters.facebook.settings import FacebookSettings

__all__ = [
    "HUMAN_AGENT_WINDOW_S",
    "JSON",
    "LEGACY_SIGNATURE_HEADER",
    "REPLY_WINDOW_S",
    "SIGNATURE_HEADER",
    "SUBSCRIBED_FIELDS",
    "TEXT_LIMIT",
    "USER_REF",
    "FacebookAdapter",
    "FacebookSettings",
    "parse_body",
]
