"""The ``tongdai`` command: one module per command group, each registering on ``main``."""

from tongdai.core.cli import (  # noqa: F401  (each registers its commands on main)
    agentmail,
    backup,
    bench,
    broadcast,
    channel_admin,
    channels,
    config,
    customer,
    deadletter,
    faq,
    keys,
    processes,
    rules,
    search,
    simulate,
    spikes,
    token,
    up,
    users,
)
from tongdai.core.cli.base import main

__all__ = ["main"]
