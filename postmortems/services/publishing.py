"""A post-mortem's status (draft, in review, published, ...) and the report emailed when it is published."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidents import timeline
from incidents.errors import DomainError, InvalidTransition, PermissionDenied
from incidents.models import FiveWhys
from incidents.timeline import postmortems as postmortem_timeline

from ..models import POSTMORTEM_TRANSITIONS, PostMortem, PostMortemStatus
from .drafting import five_whys_snapshot
from .rules import can_publish, lock_postmortem, require_edit

# --- lifecycle ----------------------------------------------------------------------------------------------


@transaction.atomic
def change_postmortem_status(*, postmortem: PostMortem, to: str, by) -> PostMortem:
    """Draft -> In review -> Published (or back to Draft from review). Publishing is for the Incident
    Commander, the post-mortem owner and managers, and emails the report after commit."""
    try:
        new = PostMortemStatus(to)
    except ValueError:
        raise DomainError(f"Unknown post-mortem status {to!r}.", field="status")
    require_edit(by, postmortem)
    postmortem = lock_postmortem(postmortem)
    old = PostMortemStatus(postmortem.status)
    if new == old:
        raise InvalidTransition(f"The post-mortem is already {old.label}.", field="status")
    if new not in POSTMORTEM_TRANSITIONS[old]:
        allowed = ", ".join(s.label for s in postmortem.allowed_transitions()) or "nothing (it is final)"
        raise InvalidTransition(
            f"The post-mortem is {old.label}; it cannot become {new.label}. It can become: {allowed}.",
            field="status",
        )
    if new == PostMortemStatus.PUBLISHED and by is not None and not can_publish(by, postmortem):
        raise PermissionDenied("Only the Incident Commander, the post-mortem owner or a manager can publish.")
    postmortem.status = new
    fields = ["status", "updated_at"]
    if new == PostMortemStatus.PUBLISHED:
        postmortem.published_at = timezone.now()
        postmortem.published_by = by
        # The published report keeps the five whys as they are now; later edits on the incident do not change it.
        postmortem.five_whys = five_whys_snapshot(FiveWhys.objects.filter(incident=postmortem.incident_id).first())
        fields += ["published_at", "published_by", "five_whys"]
    postmortem.save(update_fields=fields)
    timeline.record(
        postmortem_timeline.postmortem_status_changed(
            postmortem.incident,
            postmortem=postmortem,
            old=old,
            new=new,
            by=by,
            published=new == PostMortemStatus.PUBLISHED,
        )
    )
    if new == PostMortemStatus.PUBLISHED:
        _enqueue_report(postmortem)
    return postmortem


def _enqueue_report(postmortem: PostMortem) -> None:
    send_postmortem_report = registered_task("postmortems.tasks.send_postmortem_report")
    transaction.on_commit(partial(send_postmortem_report.delay, postmortem.pk))


@transaction.atomic
def resend_report(*, postmortem: PostMortem, by) -> PostMortem:
    """Email the published report again (e.g. after the distribution list changed)."""
    require_edit(by, postmortem)
    postmortem = lock_postmortem(postmortem)
    if not postmortem.is_published:
        raise InvalidTransition("Only a published post-mortem can be sent.", field="status")
    timeline.record(postmortem_timeline.postmortem_report_resent(postmortem.incident, postmortem=postmortem, by=by))
    _enqueue_report(postmortem)
    return postmortem


def mark_report_sent(*, postmortem_id: int) -> None:
    PostMortem.objects.filter(pk=postmortem_id).update(report_sent_at=timezone.now())
