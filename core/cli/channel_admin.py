"""`tongdai channels list | check | disable | enable | add | remove`: channels as an admin runs
them (core/pipeline/channel_admin.py; the config file edits: core/config_edit.py)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import click

from tongdai.core.cli.base import config_or_exit, open_hub
from tongdai.core.cli.channels import channels
from tongdai.core.errors import DeliveryError, NotFound, TongdaiError


def _who() -> str:
    return os.environ.get("USER", "cli")


def _n(n: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ago(ms: int | None, now_ms: int) -> str:
    if ms is None:
        return "never"
    s = max(0, (now_ms - ms) // 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"


def _when(epoch_s: int, now_s: int) -> str:
    at = datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
    left = epoch_s - now_s
    if left <= 0:
        return f"{at} (EXPIRED)"
    return f"{at} (in {round(left / 86400)} d)" if left >= 172800 else \
        f"{at} (in {round(left / 3600)} h)"


def _platform(adapter, what: str):
    """Ask the platform (``registration`` / ``token_expiry``), or say why not."""
    ask = getattr(adapter, what, None)
    if ask is None:
        return None
    try:
        return ask()
    except TongdaiError as exc:
        return f"could not ask the platform: {exc}"


@channels.command("list")
@click.option("--offline", is_flag=True, help="do not ask the platforms (webhook registration)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per channel")
def channels_list(offline: bool, as_json: bool) -> None:
    """Every configured channel with its health: enabled or not, last event, events, errors,
    sends and send failures in the last hour, webhook registration and token expiry where the
    platform has them."""
    from tongdai.core.clock import now_ms
    from tongdai.core.pipeline import channel_admin

    with open_hub() as hub:
        ids = list(hub.config.channel_settings)
        health = channel_admin.health(hub, ids)
        now = now_ms()
        for ch in ids:
            adapter, h = hub.adapter(ch), health[ch]
            webhook = None if offline else _platform(adapter, "registration")
            tokens = _platform(adapter, "token_expiry")
            if as_json:
                click.echo(json.dumps({"id": ch, "adapter": adapter.name,
                                       "disabled": h.disabled, "last_event_ms": h.last_event_ms,
                                       "last_hour": h.counts, "webhook": webhook,
                                       "token_expiry": tokens}, ensure_ascii=False))
                continue
            state = "enabled"
            if h.disabled:
                why = f": {h.disabled['why']}" if h.disabled.get("why") else ""
                state = (f"DISABLED by {h.disabled.get('by')} "
                         f"{_ago(h.disabled.get('at'), now)}{why}")
            c = h.counts
            click.echo(f"{ch}  ({adapter.name})  {state}")
            click.echo(f"    last event {_ago(h.last_event_ms, now)}; last hour: "
                       f"{_n(c['events'], 'event')}, {_n(c['errors'], 'error')}, "
                       f"{c['sent']} sent, {_n(c['send-failed'], 'send failure')}")
            if webhook:
                click.echo(f"    webhook: {webhook}")
            if isinstance(tokens, dict):
                for name, at in sorted(tokens.items()):
                    click.echo(f"    {name.replace('_', ' ')} expires {_when(at, now // 1000)}")
            elif tokens:
                click.echo(f"    tokens: {tokens}")
            if why_not := adapter.cannot_send():
                click.echo(f"    cannot send: {why_not}")


@channels.command("check")
@click.argument("channel_id")
def channels_check(channel_id: str) -> None:
    """Validate a channel's settings and, where its platform has a call for it, ask the
    platform whether its credentials work. Exit 1 when they are refused."""
    cfg = config_or_exit()  # exits 2 naming file, key and fix when the settings are invalid
    if channel_id not in cfg.channel_settings:
        raise click.UsageError(f"no channel {channel_id!r} in {cfg.path}")
    cls, _settings = cfg.channel_settings[channel_id]
    click.echo(f"settings: valid ({cls.name} adapter, {cfg.path})")
    with open_hub() as hub:  # the hub's token store: a rotated Zalo token is kept
        adapter = hub.adapter(channel_id)
        ask = getattr(adapter, "check_credentials", None)
        if ask is None:
            click.echo(f"credentials: the {adapter.name} adapter has no platform call to check "
                       "them with; settings only")
            return
        try:
            for line in ask():
                click.echo(f"credentials: accepted — {line}")
        except DeliveryError as exc:
            click.echo(f"credentials: REFUSED — {exc}", err=True)
            raise SystemExit(1) from None


@channels.command("disable")
@click.argument("channel_id")
@click.option("--why", default="", help="shown to agents and in `channels list`")
def channels_disable(channel_id: str, why: str) -> None:
    """Stop all sending on a channel, at once in every process: replies are refused (the reply
    pickers show it unreachable), acknowledgements skip it, queued replies wait. Customers'
    messages are still received and stored."""
    from tongdai.core.pipeline import channel_admin
    from tongdai.core.workspace import audit

    with open_hub() as hub:
        try:
            done = channel_admin.disable(hub, channel_id, _who(), why)
        except NotFound as exc:
            raise click.UsageError(str(exc)) from None
        if done:
            audit.record(hub, _who(), "channel.disabled", channel_id, {"why": why})
    click.echo(f"{channel_id}: disabled; nothing is sent on it, customers' messages are still "
               "stored" if done else f"{channel_id}: already disabled")


@channels.command("enable")
@click.argument("channel_id")
def channels_enable(channel_id: str) -> None:
    """Send on a disabled channel again; the replies it held go out now."""
    from tongdai.core.pipeline import channel_admin
    from tongdai.core.workspace import audit

    with open_hub() as hub:
        try:
            hub.adapter(channel_id)
        except NotFound as exc:
            raise click.UsageError(str(exc)) from None
        done = channel_admin.enable(hub, channel_id)
        if done:
            audit.record(hub, _who(), "channel.enabled", channel_id)
    click.echo(f"{channel_id}: enabled" if done else f"{channel_id}: was not disabled")


@channels.command("add")
@click.argument("channel_id")
@click.option("--adapter", "adapter_name", required=True,
              help="built-in name, installed entry point, or package.module:Class")
@click.option("--set", "values", multiple=True, metavar="KEY=VALUE",
              help="a setting (dotted for nested keys: inbound.webhook.signing_key=...); "
              "secrets as ${ENV_NAME}. Repeat for each")
def channels_add(channel_id: str, adapter_name: str, values: tuple[str, ...]) -> None:
    """Add a channel to the config file (comments kept), checked by the config loader before
    it replaces the file; running processes pick it up within seconds."""
    from tongdai.core.config_edit import add_channel, parse_sets

    try:
        path = add_channel(channel_id, adapter_name, parse_sets(values))
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}: channel {channel_id} added; running processes load it within seconds "
               f"(its webhook: /webhooks/{channel_id}). Check it: tongdai channels check "
               f"{channel_id}")


@channels.command("remove")
@click.argument("channel_id")
def channels_remove(channel_id: str) -> None:
    """Remove a channel from the config file (comments kept), checked first. Its stored
    conversations stay; its webhook answers 404 from then on (`disable` keeps receiving)."""
    from tongdai.core.config_edit import remove_channel

    try:
        path = remove_channel(channel_id)
    except TongdaiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{path}: channel {channel_id} removed; running processes drop it within "
               "seconds (its conversations stay)")
