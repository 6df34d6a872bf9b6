"""Sending mail to agents, shared by ``agentmail`` and ``agentmail_notices``.

The agent tokens of its reply addresses (made here, verified here when the agent answers), the
texts in the agent's language, the mail channel, composing a mail, and sending each one once
(a marker key per event, ``td:agentmail:sent:*``).
"""

from __future__ import annotations

import hmac
import logging
import re
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, localtime

from tongdai.adapters.email import sending
from tongdai.adapters.email.settings import EmailSettings
from tongdai.core import i18n
from tongdai.core.errors import DeliveryError
from tongdai.core.hub import Hub
from tongdai.core.models import InboundEvent
from tongdai.core.pipeline import feed
from tongdai.core.workspace import users

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "agent-reply-token"  # the HMAC's own purpose: never a customer token's check
_TOKEN = re.compile(r"^a(\d{1,12})\.([a-z0-9][a-z0-9_.-]{0,62})\.([0-9a-f]{20})$")
SENDING_TTL_S = 300  # a sender that died mid-send: its event is sent again after this
KEEP_S = 30 * 86400  # how long "sent" is remembered (longer than any redelivery)


# -- tokens ------------------------------------------------------------------------------------
def agent_token(hub: Hub, conv_id: str, user: str) -> str:
    """The token of (conversation, agent) for ``reply+<token>@``: ``a<conv>.<user>.<check>``."""
    check = hub.keyring.blind_index(TOKEN_PURPOSE, f"{conv_id}\x1f{user}")[:20]
    return f"a{conv_id}.{user}.{check}"


def agent_of_token(hub: Hub, token: str) -> tuple[str, str] | None:
    """(conversation, user) a genuine agent token names, else None (constant-time check)."""
    m = _TOKEN.match(token)
    if not m:
        return None
    conv_id, user, check = m.groups()
    good = agent_token(hub, conv_id, user).rpartition(".")[2]
    return (conv_id, user) if hmac.compare_digest(check.encode(), good.encode()) else None


def agent_tokens(ev: InboundEvent) -> list[str]:
    """The agent-token-shaped tokens a mail event is addressed to (not yet verified)."""
    return [c[2:] for c in ev.thread or () if c.startswith("t:a") and _TOKEN.match(c[2:])]


def addressed_to_agent(ev: InboundEvent) -> bool:
    """True when a mail event is addressed to something shaped like an agent token (pure:
    whether it is genuine is :func:`agentmail.handle_reply`'s question)."""
    return ev.thread is not None and bool(agent_tokens(ev))


def token_address(settings: EmailSettings, token: str) -> str:
    return settings.reply_template.format(token=token)


# -- the mail channel and sending once -------------------------------------------------------
def mail_channel(hub: Hub) -> str | None:
    """The email channel that mails agents: ``notifications.email_channel``, else the first
    email channel that can send."""
    chosen = hub.config.hub.notifications.email_channel
    if chosen:
        return chosen if chosen in hub.adapters else None
    return next((cid for cid, a in hub.adapters.items()
                 if a.name == "email" and a.settings.outbound is not None), None)


def send_once(hub: Hub, settings: EmailSettings, marker: str, mail: EmailMessage) -> bool:
    """Send ``mail`` unless ``marker`` says it went (or is going) out. A retryable failure
    releases the marker and raises, so the reactor's redelivery tries again; a permanent one
    is remembered and logged. Returns True when this call sent it."""
    key = hub.keys.agent_mail_sent(marker)
    try:
        return feed.act_once(hub, key, lambda: sending.send_mail(settings, mail),
                             f"agent mail {marker}", SENDING_TTL_S * 1000, KEEP_S)
    except DeliveryError as exc:
        if exc.retryable:
            raise
        hub.redis.set(key, "failed", ex=KEEP_S)
        log.warning("agent mail %s not sent: %s", marker, exc.code)
        return False


def compose(settings: EmailSettings, to: str, to_name: str, subject: str, text: str,
            idempotency_key: str, reply_to: str | None = None,
            in_reply_to: str | None = None, auto: str = "auto-generated") -> EmailMessage:
    """A mail to an agent, its Message-ID derived from ``idempotency_key``."""
    m = EmailMessage()
    m["From"] = formataddr((settings.name, settings.address)) if settings.name else settings.address
    m["To"] = formataddr((to_name, to)) if to_name else to
    sending.set_subject(m, " ".join(subject.split()))
    m["Date"] = format_datetime(localtime())
    m["Message-ID"] = f"<{sending.message_id(settings, idempotency_key)}>"
    if reply_to:
        m["Reply-To"] = reply_to
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
        m["References"] = f"<{in_reply_to}>"
    m["Auto-Submitted"] = auto  # RFC 3834: out-of-office robots must not answer it
    m["X-Auto-Response-Suppress"] = "All"
    m.set_content(text, charset="utf-8")
    return m


def texts_for(hub: Hub, user: users.User) -> dict[str, str]:
    """The mail texts (``mail.*`` of webhooks/static/i18n/<lang>.json, without the prefix) in
    the user's language, else the console's default."""
    strings = i18n.strings(user.language or hub.config.hub.console.default_language)
    return {k[5:]: v for k, v in strings.items() if k.startswith("mail.")}


def console_link(hub: Hub, conv_id: str) -> str:
    """The console's address of conversation ``conv_id``."""
    return f"{hub.config.hub.notifications.console_url.rstrip('/')}/console#{conv_id}"

