"""Email: SMTP listener, IMAP polling and Mailgun-style webhooks in; threaded SMTP replies out."""

from adapters.email.adapter import EmailAdapter

__all__ = ["EmailAdapter"]
