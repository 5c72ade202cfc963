"""What happens to an incident, published as typed events that other apps subscribe to.

`incidents` never imports `oncall`, `postmortems` or the chat integration: its services call `publish(...)` inside their
transaction, and the other apps register handlers in their `AppConfig.ready`:

    lifecycle.subscribe(lifecycle.IncidentDeclared, start_paging_for, in_transaction=True)
    lifecycle.subscribe(lifecycle.IncidentResolved, post_to_channel)          # after commit

A handler `in_transaction=True` runs at once, inside the publishing service's transaction, so its writes commit or
roll back with the change (a page and its outbox rows). Every other handler runs after the commit
(`transaction.on_commit`), and a failure there is logged, never raised into the service that already committed.
Handlers receive the event, which carries ids and the acting user, never a stale model instance.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LifecycleEvent:
    incident_id: int
    # The acting user (None for the portal itself: a timer, an alert rule). Kept as the object so a handler can
    # act as the same person without another query.
    by: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class IncidentDeclared(LifecycleEvent):
    pass


@dataclass(frozen=True)
class SeverityChanged(LifecycleEvent):
    old_level: str = ""
    new_level: str = ""
    raised: bool = False


@dataclass(frozen=True)
class IncidentAcknowledged(LifecycleEvent):
    """Published for every acknowledgement, also a repeated one (paging then stops a page started after the first,
    e.g. when the severity was raised); `first` is False for the repeats, which change nothing on the incident."""

    first: bool = True


@dataclass(frozen=True)
class StatusChanged(LifecycleEvent):
    old_status: str = ""
    new_status: str = ""


@dataclass(frozen=True)
class IncidentResolved(LifecycleEvent):
    pass


@dataclass(frozen=True)
class IncidentReopened(LifecycleEvent):
    pass


@dataclass(frozen=True)
class IncidentClosed(LifecycleEvent):
    pass


@dataclass(frozen=True)
class RoleAssigned(LifecycleEvent):
    role: str = ""
    holder_id: int | None = None


@dataclass(frozen=True)
class IncidentMerged(LifecycleEvent):
    """`incident_id` (the duplicate) was merged into `into_id`; its pages must move there and stop."""

    into_id: int = 0
    into_reference: str = ""


@dataclass(frozen=True)
class TimelineRecorded(LifecycleEvent):
    """A timeline entry was written (for mirrors such as the incident's chat channel, which read `event_type`).
    `number` and `restricted` are the incident's, when the writer held the incident row (else None: read them)."""

    entry_id: int = 0
    event_type: str = ""
    number: int | None = None
    restricted: bool | None = None


Handler = Callable[[LifecycleEvent], None]

_in_transaction: dict[type[LifecycleEvent], list[Handler]] = defaultdict(list)
_on_commit: dict[type[LifecycleEvent], list[Handler]] = defaultdict(list)


def subscribe(event_type: type[LifecycleEvent], handler: Handler, *, in_transaction: bool = False) -> None:
    """Register `handler` for `event_type` (and its subclasses). Registering the same handler twice is a no-op, so an
    `AppConfig.ready` that runs again (tests, autoreload) does not double the work."""
    handlers = (_in_transaction if in_transaction else _on_commit)[event_type]
    if handler not in handlers:
        handlers.append(handler)


def unsubscribe(event_type: type[LifecycleEvent], handler: Handler) -> None:
    for registry in (_in_transaction, _on_commit):
        if handler in registry[event_type]:
            registry[event_type].remove(handler)


def _handlers(registry, event: LifecycleEvent) -> list[Handler]:
    found: list[Handler] = []
    for event_type in type(event).__mro__:
        found.extend(registry.get(event_type, ()))
    return found


def publish(event: LifecycleEvent) -> None:
    """Called by a service inside its transaction, after its own writes and timeline entry."""
    for handler in _handlers(_in_transaction, event):
        handler(event)
    for handler in _handlers(_on_commit, event):
        transaction.on_commit(lambda handler=handler: _run_after_commit(handler, event))


def _run_after_commit(handler: Handler, event: LifecycleEvent) -> None:
    try:
        handler(event)
    except Exception:
        # The incident change is committed; a side effect that fails (chat down, broker down) must not turn the
        # user's successful action into an error. Outbox-backed handlers retry on their own.
        logger.exception("lifecycle handler %s failed for %r", getattr(handler, "__qualname__", handler), event)
