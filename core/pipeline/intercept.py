"""A hook of the pipeline: events that are not a customer's message, taken before ingest.

Agents answer from a Telegram staff group and by mail; those updates reach the hub through the
same webhooks and mailboxes as customers' and must never become a customer's message. The
pipeline does not know the workspace (it sits below it): the workspace registers an
*interceptor* here, and ``ingest.process`` offers every parsed event to the interceptors
first. One that raises sends the raw event to the dead letters, named after the interceptor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tongdai.core.hub import Hub
from tongdai.core.models import InboundEvent, RawEvent

# (raw, event, channel) → True when the event was taken (handled, or refused and explained)
Take = Callable[[RawEvent, InboundEvent, str], bool]


@dataclass(frozen=True)
class Interceptor:
    name: str  # says who failed in a dead letter: "staff group", "agent mail"
    order: int
    for_batch: Callable[[Hub], Take | None]  # None: takes nothing in this hub


INTERCEPTORS: dict[str, Interceptor] = {}


def interceptor(name: str, order: int) -> Callable:
    """Register ``for_batch(hub) -> take | None``, called once per ingest batch."""
    def wrap(fn: Callable[[Hub], Take | None]) -> Callable[[Hub], Take | None]:
        INTERCEPTORS[name] = Interceptor(name, order, fn)
        return fn
    return wrap


def for_batch(hub: Hub) -> list[tuple[str, Take]]:
    """The interceptors that take something in ``hub``, in order. None registered is a wiring
    mistake (agents' replies would be stored as customers' messages): say so."""
    if not INTERCEPTORS:
        raise RuntimeError("no ingest interceptors are registered: import tongdai.core.workspace "
                           "(every process entry point does) before ingesting")
    out = []
    for i in sorted(INTERCEPTORS.values(), key=lambda i: i.order):
        take = i.for_batch(hub)
        if take is not None:
            out.append((i.name, take))
    return out
