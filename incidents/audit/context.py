"""Who is acting right now, for the audit trail.

Web requests: AuditContextMiddleware stores the request; the actor is read from `request.user` lazily, when
a record is written. That matters for the API: DRF authenticates (token, session) after all middleware ran,
inside the view, and its `Request.user` setter also sets `request._request.user` on the Django request. By the
time a service saves anything, `request.user` is the API user, so no DRF hook is needed.

Celery tasks: task_prerun/task_postrun (connected in AuditConfig.ready) make the task's name the source and its
id the request id; the actor is the portal itself unless the task wraps its work in `acting_as(user)`.

Services, tasks, management commands and the API may name the actor explicitly with `acting_as(user)`, which
wins over the request's user.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace

_UNSET = object()
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class AuditContext:
    request: object | None = None
    actor: object = _UNSET
    source: str = "system"
    request_id: str = ""
    ip_address: str | None = None
    # What the client sent as X-Request-ID (well-formed, else empty): kept for correlating with its logs, never
    # used as our request id, which the portal generates so a client cannot make records look like another's.
    client_request_id: str = ""


# AuditContext is a frozen dataclass, so sharing one default instance is safe.
_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "audit_context",
    default=AuditContext(),  # noqa: B039
)


def current_context() -> AuditContext:
    return _current.get()


def current_actor():
    """The explicit acting_as() user, else the authenticated user of the current request, else None."""
    context = _current.get()
    if context.actor is not _UNSET:
        return context.actor
    request = context.request
    if request is None:
        return None
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return None


@contextmanager
def acting_as(user, *, source: str | None = None):
    """Attribute every change inside the block to `user` (None = the portal itself).

    Request id and IP of an enclosing request are kept, so an API call that delegates to a service still
    carries them."""
    outer = _current.get()
    token = _current.set(replace(outer, actor=user, source=source or outer.source))
    try:
        yield
    finally:
        _current.reset(token)


@contextmanager
def request_context(request, *, source: str = "web"):
    header = request.META.get("HTTP_X_REQUEST_ID", "")
    client_request_id = header if REQUEST_ID_PATTERN.match(header) else ""
    request_id = uuid.uuid4().hex
    # REMOTE_ADDR only: forwarded-for headers are client-controlled unless a trusted proxy rewrites them.
    ip_address = request.META.get("REMOTE_ADDR") or None
    token = _current.set(
        AuditContext(
            request=request,
            source=source,
            request_id=request_id,
            ip_address=ip_address,
            client_request_id=client_request_id,
        )
    )
    try:
        yield request_id
    finally:
        _current.reset(token)


_task_tokens: dict[str, contextvars.Token] = {}


def task_started(task_id=None, task=None, **kwargs):
    """Celery task_prerun: changes made by a task are attributed to the portal, source `task:<name>`."""
    name = getattr(task, "name", "") or "unknown"
    source = f"task:{name.rsplit('.', 1)[-1]}"[:20]
    _task_tokens[task_id] = _current.set(AuditContext(actor=None, source=source, request_id=str(task_id or "")[:64]))


def task_finished(task_id=None, **kwargs):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _current.reset(token)
