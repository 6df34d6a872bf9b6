"""`tongdai keys`: generate and rotate the customer-data keys."""

from __future__ import annotations

import click

from tongdai.core.cli.base import main, open_hub


@main.group()
def keys() -> None:
    """Encryption keys for customer data."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a fresh key set as environment lines (keep them secret, back them up): the
    customer-data keys and the Web Push (VAPID) key."""
    from tongdai.core import vapid
    from tongdai.core.crypto import generate

    for name, value in generate().items():
        click.echo(f"{name}={value}")
    click.echo(f"{vapid.ENV}={vapid.generate().secret()}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt stored customer data under the active key (the first of TONGDAI_DATA_KEYS).

    Runs online, shows progress, and resumes where it stopped after a crash or Ctrl-C.
    """
    from tongdai.core.identity import rotation

    with open_hub() as hub:
        n_cust, n_conv = rotation.totals(hub)
        with click.progressbar(length=n_cust + n_conv,
                               label=f"re-encrypting under key {hub.keyring.active}") as bar:
            result = rotation.rotate(hub, bar.update)
        where = f" (resumed at {result.resumed_from[0]} {result.resumed_from[1]})" \
            if result.resumed_from else ""
        click.echo(f"done{where}: {result.customers} customers, {result.conversations} "
                   f"conversations, {result.rewritten} values re-encrypted. Raw-log entries "
                   "under older keys age out with ingest.raw_retention: keep those keys "
                   "configured until then.")
