"""The declarative adapter (``adapter: webhook``): a platform with a JSON webhook in and a
JSON send API out, added by configuration alone (docs/webhook-adapter.md).

Modules: ``settings`` (the channel's settings, checked at start-up), ``expressions`` (JMESPath,
compiled once), ``templates`` (``{placeholder}`` strings and JSON bodies), ``events`` (reading
bodies into events), ``adapter`` (verification and sending).
"""

from tongdai.adapters.webhook.adapter import WebhookAdapter
from tongdai.adapters.webhook.settings import WebhookSettings

__all__ = ["WebhookAdapter", "WebhookSettings"]
