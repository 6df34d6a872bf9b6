"""Email: SMTP listener, IMAP polling and Mailgun-style webhooks in; threaded SMTP replies out."""

from tongdai.adapters.email.adapter import EmailAdapter

__all__ = ["EmailAdapter"]
