"""What people write on an incident: timeline notes and actions (back-dated by the Scribe), chat messages put on
the timeline, and the five whys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import timeline
from ..errors import DomainError, PermissionDenied
from ..models import EntryKind, FiveWhys, Incident
from ..selectors import may_backdate
from .rules import (
    BACKDATE_TOLERANCE,
    MAX_TIMELINE_ENTRY_LENGTH,
    check_entry_time,
    ensure_responder,
    lock_incident,
    require_responder,
)


@transaction.atomic
def add_timeline_entry(
    *, incident: Incident, by, body: str, occurred_at: datetime | None = None, kind: str = EntryKind.NOTE
):
    """A note (or action) on the timeline. Back-dating (occurred_at in the past) is for the Scribe,
    the Incident Commander and managers: the Scribe records what happened before they wrote it down."""
    require_responder(by)
    body = (body or "").strip()
    if not body:
        raise DomainError("Write something for the timeline entry.", field="body")
    if len(body) > MAX_TIMELINE_ENTRY_LENGTH:
        raise DomainError(
            f"Keep a timeline entry under {MAX_TIMELINE_ENTRY_LENGTH:,} characters; link to longer material.",
            field="body",
        )
    if kind not in (EntryKind.NOTE, EntryKind.ACTION):
        raise DomainError("Only notes and actions can be added by hand.", field="kind")
    incident = lock_incident(incident)
    now = timezone.now()
    if occurred_at is not None:
        check_entry_time(incident, occurred_at, now=now)
        if now - occurred_at > BACKDATE_TOLERANCE and not may_backdate(by, incident):
            raise PermissionDenied(
                "Only the Scribe, the Incident Commander or a manager can back-date timeline entries."
            )
    ensure_responder(incident, by, by=by)
    builder = timeline.note if kind == EntryKind.NOTE else timeline.action_taken
    return timeline.record(builder(incident, body=body, by=by, occurred_at=occurred_at or now))


@transaction.atomic
def add_chat_message(*, incident: Incident, by, author, body: str, said_at: datetime):
    """A message from the incident's chat channel put on the timeline by a responder (📌 or "Add to timeline"),
    as said: by its author (None when the chat user is not a portal user; the body names them) at the time the chat
    server stamped it. That time is the chat's, not a claim by `by`, so any responder may add an older message."""
    require_responder(by)
    body = (body or "").strip()
    if not body:
        raise DomainError("That message has no text to put on the timeline.", field="body")
    if len(body) > MAX_TIMELINE_ENTRY_LENGTH:
        raise DomainError(
            f"Keep a timeline entry under {MAX_TIMELINE_ENTRY_LENGTH:,} characters; link to longer material.",
            field="body",
        )
    incident = lock_incident(incident)
    check_entry_time(incident, said_at, now=timezone.now())
    ensure_responder(incident, by, by=by)
    return timeline.record(timeline.note(incident, body=body, by=author, occurred_at=said_at))


@transaction.atomic
def record_five_whys(*, incident: Incident, problem: str, whys: Sequence[str], root_cause: str, by) -> FiveWhys:
    require_responder(by)
    problem = (problem or "").strip()
    if not problem:
        raise DomainError("State the problem the five whys start from.", field="problem")
    whys = [why.strip() for why in whys if why and why.strip()]
    if len(whys) > 10:
        raise DomainError("Keep it to at most ten whys.", field="whys")
    incident = lock_incident(incident)
    five_whys, _ = FiveWhys.objects.select_for_update().get_or_create(incident=incident, defaults={"problem": problem})
    five_whys.problem = problem
    five_whys.whys = whys
    five_whys.root_cause = (root_cause or "").strip()
    five_whys.updated_by = by
    five_whys.save()
    timeline.record(timeline.five_whys_recorded(incident, five_whys=five_whys, by=by))
    return five_whys
