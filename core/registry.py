"""Adapter resolution: built-in name → ``tongdai.adapters`` entry point → ``module:Class``."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from tongdai.adapters.base import Adapter
from tongdai.core.errors import ConfigError

BUILTIN = {
    "telegram": "tongdai.adapters.telegram:TelegramAdapter",
    "facebook": "tongdai.adapters.facebook:FacebookAdapter",
    "zalo": "tongdai.adapters.zalo:ZaloAdapter",
    "email": "tongdai.adapters.email:EmailAdapter",
    "webhook": "tongdai.adapters.webhook:WebhookAdapter",  # declarative: docs/webhook-adapter.md
}
ENTRY_POINT_GROUP = "tongdai.adapters"


def _load(path: str) -> type:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def resolve_adapter(name: str) -> type[Adapter]:
    """The adapter class a channel's ``adapter:`` names; ConfigError when there is none."""
    target: str | None = BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                target = ep.value
                break
    if target is None and ":" in name:
        target = name
    if target is None:
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError("", "adapter", f"no adapter called {name!r}",
                          f"use a built-in one ({known}), an installed '{ENTRY_POINT_GROUP}' "
                          "entry point, or a 'package.module:Class' path")
    try:
        cls = _load(target)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("", "adapter", f"cannot import {target!r} ({exc})",
                          "install the package that provides it or fix the path") from None
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ConfigError("", "adapter", f"{target!r} is not an tongdai.adapters.base.Adapter subclass",
                          "point at a class that implements the adapter contract")
    return cls
