"""Edits of the config file (`tongdai channels add / remove`, the console's admin area: add,
remove, a channel secret set), done safely.

The file is read and written by ruamel.yaml's round-trip mode, so the admin's comments, key
order and quoting stay; the result goes to a temporary file beside it, is loaded by the
normal config loader (``load_config``: every check start-up makes), and only then replaces the
file by an atomic rename — a reader (the processes' hot reload, ``core/config_watch.py``) sees
the old file or the new one, never half of one. An invalid result changes nothing and is
refused with the loader's file, key and fix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from tongdai.core.config import (
    _ENV_REF,
    SEALED,
    SEALED_PURPOSE,
    ConfigInvalid,
    config_path,
    load_config,
)
from tongdai.core.crypto import Keyring
from tongdai.core.errors import ConfigError


def _yaml() -> YAML:
    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a long line
    y.indent(mapping=2, sequence=4, offset=2)  # "channels:\n  - id: x", as the shipped files
    return y


def parse_sets(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``key=value`` pairs (dotted keys nest; values read as YAML scalars: 2525 is a number,
    ${NAME} stays a reference) → a nested mapping."""
    out: dict[str, Any] = {}
    y = YAML(typ="safe")
    for item in values:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError("(command line)", item, "not KEY=VALUE",
                              "write --set key=value, e.g. --set bot_token='${TG_TOKEN}'")
        value = raw if raw.startswith("${") else y.load(raw) if raw else ""
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _channels(data: Any, path: str) -> CommentedSeq:
    if not isinstance(data, dict):
        raise ConfigError(path, "(top level)", "must be a mapping of sections",
                          "start from config/tongdai.example.yaml")
    if data.get("channels") is None:
        data["channels"] = CommentedSeq()
    if not isinstance(data["channels"], list):
        raise ConfigError(path, "channels", "is not a list", "make it a list of channels")
    return data["channels"]


def _rewrite(path: str, change) -> None:
    """Load ``path`` round-trip, apply ``change(data)``, validate the result, swap it in."""
    y = _yaml()
    p = Path(path)
    data = y.load(p.read_text(encoding="utf-8"))
    change(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            y.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, p.stat().st_mode & 0o7777)
        try:
            load_config(tmp)
        except ConfigInvalid as exc:  # said about the real file: nothing was changed
            first = exc.errors[0]
            raise ConfigError(path, first.key, f"{first.problem} (the file is unchanged)",
                              first.fix) from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def add_channel(channel_id: str, adapter: str, settings: dict[str, Any],
                path: str | None = None) -> str:
    """Append a channel to the config file; returns the file's path."""
    path = path or config_path()

    def change(data: Any) -> None:
        chans = _channels(data, path)
        if any(isinstance(c, dict) and c.get("id") == channel_id for c in chans):
            raise ConfigError(path, f"channels[{channel_id}]", "this id is taken",
                              "choose another id, or remove the channel first")
        entry = CommentedMap([("id", channel_id), ("adapter", adapter)])
        entry["settings"] = _commented(settings)
        chans.append(entry)

    _rewrite(path, change)
    return path


def remove_channel(channel_id: str, path: str | None = None) -> str:
    """Remove a channel from the config file; returns the file's path."""
    path = path or config_path()

    def change(data: Any) -> None:
        chans = _channels(data, path)
        at = [i for i, c in enumerate(chans) if isinstance(c, dict) and c.get("id") == channel_id]
        if not at:
            raise ConfigError(path, f"channels[{channel_id}]", "no such channel",
                              "tongdai channels list shows the configured ones")
        del chans[at[0]]

    _rewrite(path, change)
    return path


def _entry(data: Any, path: str, channel_id: str) -> Any:
    for c in _channels(data, path):
        if isinstance(c, dict) and c.get("id") == channel_id:
            return c
    raise ConfigError(path, f"channels[{channel_id}]", "no such channel",
                      "tongdai channels list shows the configured ones")


def seal(keyring: Keyring, value: str) -> str:
    """A secret as the file keeps it when it is not an ${ENV} reference: sealed with the data
    keys (opened by ``load_config``)."""
    return keyring.encrypt_text(value, SEALED_PURPOSE)


def set_channel_secret(channel_id: str, key: str, value: str, keyring: Keyring,
                       path: str | None = None) -> str:
    """Write a new value for one secret of a channel's settings (``key`` dotted:
    ``bot_token``, ``secrets.access_token``): an ``${ENV}`` reference as written, anything
    else sealed. Validated like every edit; returns the file's path."""
    path = path or config_path()
    stored = value if _ENV_REF.fullmatch(value) else seal(keyring, value)

    def change(data: Any) -> None:
        node = _entry(data, path, channel_id).get("settings")
        *parents, last = key.split(".")
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            raise ConfigError(path, f"channels[{channel_id}].settings.{key}", "not in the file",
                              "rotate a secret the channel's settings have")
        node[last] = stored

    _rewrite(path, change)
    return path


def secret_sources(channel_id: str, keys: list[str], path: str | None = None) -> dict[str, Any]:
    """Where each secret of a channel comes from, never its value: ``{"env": NAME}`` for an
    ${ENV} reference (with ``"default": True`` when NAME is unset or empty and the reference's
    ``:-`` default — the shipped placeholder — is what runs), ``{"sealed": True}``, or
    ``{"file": True}`` (written in clear)."""
    path = path or config_path()
    data = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8")) or {}
    entry = next((c for c in data.get("channels") or [] if isinstance(c, dict)
                  and c.get("id") == channel_id), {})
    out: dict[str, Any] = {}
    for key in keys:
        node: Any = entry.get("settings") or {}
        for p in key.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        raw = node if isinstance(node, str) else ""
        m = _ENV_REF.fullmatch(raw.strip())
        if m:  # the same rule as the loader's: unset or empty takes the default
            unset = m.group(2) is not None and not os.environ.get(m.group(1))
            out[key] = {"env": m.group(1), **({"default": True} if unset else {})}
        else:
            out[key] = {"sealed": True} if raw.startswith(SEALED) else {"file": True}
    return out


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _commented(v)
        return m
    return value
