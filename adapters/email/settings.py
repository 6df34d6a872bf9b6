"""An email channel's settings, as an admin writes them in ``config/tongdai.yaml``.

```yaml
- id: mail-support
  adapter: email
  settings:
    address: support@example.vn
    inbound:                      # any of these three, or several
      smtp: {host: 127.0.0.1, port: 2525}
      imap: {host: imap.example.vn, user: support@example.vn, password: ${IMAP_PASSWORD}}
      webhook: {signing_key: ${MAILGUN_SIGNING_KEY}}
    outbound:
      smtp: {host: smtp.example.vn, port: 587, starttls: true, user: support@example.vn,
             password: ${SMTP_PASSWORD}}
    trusted_authserv_id: mx.example.vn
```
"""

from __future__ import annotations

from pydantic import SecretStr, field_validator, model_validator

from tongdai.adapters.base import ChannelSettings
from tongdai.adapters.email.imap import ImapSettings

_ADDRESS_ADVICE = "must be a mail address such as support@example.vn"


def _address(v: str) -> str:
    local, at, domain = v.strip().rpartition("@")
    if not at or not local or "." not in domain or " " in v.strip():
        raise ValueError(_ADDRESS_ADVICE)
    return f"{local}@{domain.lower()}"


class SmtpListen(ChannelSettings):
    """Where ``tongdai smtp`` listens for this channel's mail (behind the MX, or as one)."""

    host: str = "127.0.0.1"
    port: int = 2525


class MailgunWebhook(ChannelSettings):
    """Mailgun-style inbound parse posts: signed form with the raw mail in ``body-mime``."""

    signing_key: SecretStr
    max_age_s: float = 120.0  # older timestamps are refused (replays)


class Inbound(ChannelSettings):
    smtp: SmtpListen | None = None
    imap: ImapSettings | None = None
    webhook: MailgunWebhook | None = None

    @model_validator(mode="after")
    def _some(self) -> Inbound:
        if self.smtp is None and self.imap is None and self.webhook is None:
            raise ValueError("name at least one of smtp, imap or webhook: where mail comes in")
        return self


class SmtpRelay(ChannelSettings):
    """The server replies are sent through."""

    host: str
    port: int = 587
    starttls: bool = True  # upgrade a plain connection (port 587)
    tls: bool = False  # implicit TLS from the start (port 465)
    user: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 30.0
    verify_tls: bool = True  # False only for test servers with self-signed certificates

    @model_validator(mode="after")
    def _auth(self) -> SmtpRelay:
        if (self.user is None) != (self.password is None):
            raise ValueError("give both user and password, or neither (no authentication)")
        if self.tls and self.starttls:
            raise ValueError("choose tls (implicit, port 465) or starttls (port 587), not both")
        return self


class Outbound(ChannelSettings):
    smtp: SmtpRelay


class EmailSettings(ChannelSettings):
    address: str
    name: str | None = None  # the From display name of replies, e.g. "Shop ABC hỗ trợ"
    aliases: tuple[str, ...] = ()  # more addresses whose mail this channel takes
    # Reply-To of everything we send; {token} names the conversation. The SMTP listener
    # accepts these addresses too. Default: reply+{token}@<the domain of address>.
    reply_address: str | None = None
    inbound: Inbound
    outbound: Outbound | None = None
    trusted_authserv_id: str | None = None  # whose Authentication-Results we believe
    # Sent once when a mail opens a new conversation ({ticket} is its number); never sent to
    # automatic mail. Marked Auto-Submitted: auto-replied.
    acknowledge: str | None = None

    _addr = field_validator("address")(classmethod(lambda cls, v: _address(v)))

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a) for a in v)

    @field_validator("reply_address")
    @classmethod
    def _reply(cls, v: str | None) -> str | None:
        if v is not None and (v.count("{token}") != 1 or "@" not in v.split("{token}")[1]):
            raise ValueError("must contain {token} once, before the @, e.g. "
                             "reply+{token}@example.vn")
        return v

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def reply_template(self) -> str:
        return self.reply_address or f"reply+{{token}}@{self.domain}"
