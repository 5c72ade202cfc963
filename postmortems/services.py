"""Every state change of post-mortems and action items. Each function takes the acting user (None for the
portal itself), runs in one transaction, locks what it changes (the incident row first, then the post-mortem,
the same order change_status uses), writes a timeline entry on the incident in the same transaction and
enqueues emails with transaction.on_commit. Views, admin and tasks all call these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidents import access, timeline
from incidents.errors import DomainError, InvalidTransition, PermissionDenied
from incidents.markdown import render_markdown
from incidents.models import (
    FiveWhys,
    Incident,
    IncidentResponder,
    Role,
    TimelineEntry,
)
from incidents.profiles.zones import format_moment, format_moment_utc
from incidents.selectors import current_holder
from incidents.services import record_checklist_fact
from oncall.models import Person

from .models import (
    MARKDOWN_SECTIONS,
    MEETING_WITHIN,
    POSTMORTEM_TRANSITIONS,
    ActionItem,
    ActionItemPriority,
    ActionItemStatus,
    ActionItemType,
    PostMortem,
    PostMortemStatus,
    PostMortemTimelineItem,
)

# "Before due" reminders go out this many days ahead of the due date.
REMIND_DAYS_BEFORE_DUE = 1
REMINDER_BATCH = 200
TIMELINE_TEXT_MAX = 500
# Bounds on the dates people type (QA: a meeting in year 9999 was accepted). The browser forms, the admin and the
# API all reach these through the services below.
MEETING_MAX_AHEAD = timedelta(days=366)
ACTION_ITEM_MAX_AHEAD = timedelta(days=2 * 366)
TIMELINE_MAX_BEFORE_INCIDENT = timedelta(days=2 * 366)
FUTURE_TOLERANCE = timedelta(minutes=1)


# --- formatting helpers used by the draft ----------------------------------------------------------------


def humanize_duration(value: timedelta | None) -> str:
    """The guide's style, exact to the second: "2 hours 15 minutes", "3 minutes 20 seconds", "1 day 4 hours"."""
    if value is None:
        return "not recorded"
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0 seconds"
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts)


def _name(user) -> str:
    if user is None:
        return "nobody assigned"
    return user.get_full_name() or user.get_username()


def _local(moment: datetime) -> datetime:
    return timezone.localtime(moment)


def _plain_line(markdown_text: str) -> str:
    """A timeline entry body as one line of the post-mortem timeline (the first paragraph, shortened)."""
    first = (markdown_text or "").strip().split("\n\n", 1)[0].replace("\n", " ").strip()
    return first[: TIMELINE_TEXT_MAX - 1] + "…" if len(first) > TIMELINE_TEXT_MAX else first


def response_times(incident: Incident) -> list[tuple[str, timedelta | None]]:
    """The detection and response times of the guide's summary, from the incident's own timestamps."""
    return [
        ("Time to detect", incident.time_to_detect),
        ("Time to acknowledge", incident.time_to_acknowledge),
        ("Time to mitigate", incident.time_to_mitigate),
        ("Time to resolve", incident.time_to_resolve),
    ]


def draft_summary(incident: Incident, *, commander) -> str:
    declared = _local(incident.declared_at)
    lines = [
        f"- Incident #: {incident.reference}",
        f"- Date: {format_moment(declared.date())}",
        f"- Duration: {humanize_duration(incident.duration)}",
        f"- Severity: {incident.severity.level} ({incident.severity.name})",
        f"- Incident Commander: {_name(commander)}",
        f"- Detected: {format_moment_utc(incident.detected_at)}, {incident.get_detection_source_display()}",
    ]
    lines += [f"- {label}: {humanize_duration(value)}" for label, value in response_times(incident)]
    text = "\n".join(lines)
    if incident.summary.strip():
        text += "\n\n" + incident.summary.strip()
    return text


def draft_impact(incident: Incident, services: list) -> str:
    names = ", ".join(service.name for service in services) or "none recorded"
    text = f"- Services Affected: {names}"
    if incident.impact.strip():
        text += "\n\n" + incident.impact.strip()
    return text


def draft_root_cause(five_whys: FiveWhys | None) -> str:
    """The five whys' root cause. The whys themselves are not copied: the report shows the incident's current
    five whys until it is published (see five_whys_snapshot)."""
    if five_whys is None:
        return ""
    return five_whys.root_cause.strip()


def five_whys_snapshot(five_whys: FiveWhys | None) -> dict | None:
    if five_whys is None:
        return None
    return {"problem": five_whys.problem, "whys": list(five_whys.whys), "root_cause": five_whys.root_cause}


def _users_affected(incident: Incident) -> str:
    value = incident.users_affected_percent
    if value is None:
        return ""
    return f"{value.normalize():f}%"


# --- draft --------------------------------------------------------------------------------------------------


def ensure_draft_for(*, incident: Incident, by) -> PostMortem:
    """Called by incidents.services.change_status inside its transaction (the incident row is locked) when an
    incident becomes Resolved: create the post-mortem draft, due 48 hours after resolution, with its content
    drafted from the incident. Re-resolving a re-opened incident keeps the existing post-mortem."""
    existing = PostMortem.objects.filter(incident=incident).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        return _create_draft(incident, by=by)


def _timeline_item(postmortem, entry_id, occurred_at, body, body_html, is_key_event) -> PostMortemTimelineItem:
    text = _plain_line(body) or "(empty entry)"
    # A one-paragraph entry (most of them) already has its sanitised HTML: reuse it rather than render again.
    html = body_html if text == (body or "").strip() and body_html else render_markdown(text)
    return PostMortemTimelineItem(
        postmortem=postmortem,
        entry_id=entry_id,
        occurred_at=occurred_at,
        text=text,
        text_html=html,
        is_included=is_key_event,
    )


def _create_draft(incident: Incident, *, by) -> PostMortem:
    resolved_at = incident.resolved_at or timezone.now()
    commander = current_holder(incident, Role.INCIDENT_COMMANDER)
    technical_lead = current_holder(incident, Role.TECHNICAL_LEAD)
    services = list(incident.services.all())
    postmortem = PostMortem.objects.create(
        incident=incident,
        title=f"Post-mortem: {incident.title}"[:200],
        owner=commander or by,
        due_at=resolved_at + MEETING_WITHIN,
        summary=draft_summary(incident, commander=commander),
        impact=draft_impact(incident, services),
        users_affected=_users_affected(incident),
        root_cause=draft_root_cause(FiveWhys.objects.filter(incident=incident).first()),
    )
    # The guide's attendees: Incident Commander, Technical Lead, all responders (stakeholders are added later).
    attendee_ids = set(IncidentResponder.objects.filter(incident=incident).values_list("user_id", flat=True))
    attendee_ids |= {user.pk for user in (commander, technical_lead) if user is not None}
    postmortem.attendees.set(attendee_ids)
    # Key events become the timeline's lines; every other entry stays one tick away on the timeline editor,
    # so drafting costs the same for an incident with 20 entries or 20,000.
    key_events = TimelineEntry.objects.filter(incident=incident, is_key_event=True).order_by("occurred_at", "id")
    PostMortemTimelineItem.objects.bulk_create(
        _timeline_item(postmortem, *row)
        for row in key_events.values_list("id", "occurred_at", "body", "body_html", "is_key_event")
    )
    timeline.record(timeline.postmortem_drafted(incident, postmortem=postmortem, by=by))
    return postmortem


# --- permissions --------------------------------------------------------------------------------------------


def can_edit(user, postmortem: PostMortem) -> bool:
    return access.can_respond(user) or (user is not None and user.pk == postmortem.owner_id)


def can_publish(user, postmortem: PostMortem) -> bool:
    """The guide's rule: only the Incident Commander, the post-mortem owner and managers publish."""
    if not access.can_view(user):
        return False
    if access.is_manager(user) or user.pk == postmortem.owner_id:
        return True
    commander = current_holder(postmortem.incident, Role.INCIDENT_COMMANDER)
    return commander is not None and commander.pk == user.pk


def _require_edit(user, postmortem: PostMortem) -> None:
    if user is not None and not can_edit(user, postmortem):
        raise PermissionDenied("You need the responder role to edit post-mortems.")


def _lock(postmortem: PostMortem) -> PostMortem:
    # Incident first, then the post-mortem: the order change_status (which drafts) takes them in.
    Incident.objects.select_for_update().filter(pk=postmortem.incident_id).values_list("pk", flat=True).first()
    return (
        PostMortem.objects.select_for_update(of=("self",))
        .select_related("incident", "incident__severity")
        .get(pk=postmortem.pk)
    )


def _require_editable(postmortem: PostMortem, field: str = "status") -> None:
    if not postmortem.is_editable:
        raise InvalidTransition("The post-mortem is published; its content is final.", field=field)


# --- dates -------------------------------------------------------------------------------------------------


def _day(moment: datetime) -> str:
    return format_moment(_local(moment).date())


def check_meeting_time(incident: Incident, meeting_at: datetime) -> None:
    """Not before the incident (nor its resolution, once resolved), and at most a year from now."""
    if meeting_at < incident.detected_at:
        raise DomainError("The meeting cannot be before the incident was detected.", field="meeting_at")
    if incident.resolved_at is not None and meeting_at < incident.resolved_at:
        raise DomainError("The meeting cannot be before the incident was resolved.", field="meeting_at")
    latest = timezone.now() + MEETING_MAX_AHEAD
    if meeting_at > latest:
        raise DomainError(f"Choose a meeting time within a year from now (by {_day(latest)}).", field="meeting_at")


def check_due_date(due_date: date) -> None:
    """An action item is due from today to two years ahead. Checked only for a date being set or changed, so an
    overdue item keeps its past date while its owner, description or priority are edited."""
    today = timezone.localdate()
    if due_date < today:
        raise DomainError("The due date cannot be in the past.", field="due_date")
    latest = today + ACTION_ITEM_MAX_AHEAD
    if due_date > latest:
        raise DomainError(f"Choose a due date within two years (by {format_moment(latest)}).", field="due_date")


def check_timeline_time(incident: Incident, occurred_at: datetime) -> None:
    """A line the review found: not in the future, at most two years before the incident was detected."""
    if occurred_at > timezone.now() + FUTURE_TOLERANCE:
        raise DomainError("A timeline line cannot be in the future.", field="occurred_at")
    earliest = incident.detected_at - TIMELINE_MAX_BEFORE_INCIDENT
    if occurred_at < earliest:
        raise DomainError(
            f"Choose a time within two years before the incident (from {_day(earliest)}).", field="occurred_at"
        )


# --- content ------------------------------------------------------------------------------------------------


@transaction.atomic
def assign_owner(*, postmortem: PostMortem, owner, by) -> PostMortem:
    """Hand the post-mortem to someone else to write (the owner may publish it)."""
    _require_edit(by, postmortem)
    if owner is None or not owner.is_active:
        raise DomainError("Choose an active owner.", field="owner")
    postmortem = _lock(postmortem)
    _require_editable(postmortem, field="owner")
    check_owner_sees_incident(owner, postmortem.incident)
    if postmortem.owner_id != owner.pk:
        postmortem.owner = owner
        postmortem.save(update_fields=["owner", "updated_at"])
        timeline.record(
            timeline.postmortem_owner_changed(postmortem.incident, postmortem=postmortem, owner=owner, by=by)
        )
    return postmortem


EDITABLE_TEXT_FIELDS = [field for field, _ in MARKDOWN_SECTIONS] + ["title", "users_affected", "revenue_impact"]


@transaction.atomic
def update_content(*, postmortem: PostMortem, by, **fields) -> PostMortem:
    """Edit the template's sections (Markdown) and the impact figures while draft or in review."""
    unknown = set(fields) - set(EDITABLE_TEXT_FIELDS)
    if unknown:
        raise DomainError(f"Unknown post-mortem field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    _require_edit(by, postmortem)
    postmortem = _lock(postmortem)
    _require_editable(postmortem, field=next(iter(fields), "status"))
    if "title" in fields and not (fields["title"] or "").strip():
        raise DomainError("Give the post-mortem a title.", field="title")
    for name, value in fields.items():
        value = (value or "").strip()
        max_length = PostMortem._meta.get_field(name).max_length
        if max_length and len(value) > max_length:
            raise DomainError(f"Keep it under {max_length} characters.", field=name)
        setattr(postmortem, name, value)
    postmortem.save()
    return postmortem


def _line_text(value: str) -> str:
    text = (value or "").strip()
    if not text:
        raise DomainError("A timeline line cannot be empty; untick it instead.", field="timeline")
    if "\x00" in text:
        raise DomainError("A timeline line cannot contain null characters.", field="timeline")
    return text[:TIMELINE_TEXT_MAX]


def _parse_line_keys(keys) -> tuple[set[int], set[int]]:
    entry_ids, item_ids = set(), set()
    for key in keys:
        kind, _, number = str(key).partition(":")
        if kind not in {"entry", "item"} or not number.isdigit() or len(number) > 18:
            raise DomainError(f"Unknown timeline line {key!r}.", field="timeline")
        (entry_ids if kind == "entry" else item_ids).add(int(number))
    return entry_ids, item_ids


@transaction.atomic
def update_timeline(*, postmortem: PostMortem, by, include: Iterable[str], texts: Mapping[str, str] | None = None):
    """Choose the post-mortem's timeline lines and correct their wording. A line is named "entry:<id>" (an entry
    of the incident's timeline) or "item:<id>" (a line added by hand). Unticking keeps a line's edited wording
    for later; the incident's own timeline never changes."""
    _require_edit(by, postmortem)
    postmortem = _lock(postmortem)
    _require_editable(postmortem, field="timeline")
    include, texts = set(include), dict(texts or {})
    entry_ids, item_ids = _parse_line_keys(include | set(texts))
    items = list(PostMortemTimelineItem.objects.filter(postmortem=postmortem).select_for_update())
    by_entry = {item.entry_id: item for item in items if item.entry_id}
    if item_ids - {item.pk for item in items}:
        raise DomainError("That timeline line is not part of this post-mortem.", field="timeline")
    new_ids = {pk for pk in entry_ids - by_entry.keys() if f"entry:{pk}" in include}
    entries = TimelineEntry.objects.filter(incident_id=postmortem.incident_id, pk__in=new_ids)
    created = []
    for row in entries.values_list("id", "occurred_at", "body", "body_html", "is_key_event"):
        item = _timeline_item(postmortem, *row)
        item.is_included = True
        if f"entry:{item.entry_id}" in texts:
            item.text = _line_text(texts[f"entry:{item.entry_id}"])
            item.text_html = render_markdown(item.text)
        created.append(item)
    if len(created) != len(new_ids):
        raise DomainError("That entry is not part of this incident's timeline.", field="timeline")
    changed = []
    for item in items:
        key = f"entry:{item.entry_id}" if item.entry_id else f"item:{item.pk}"
        dirty = (key in include) != item.is_included
        item.is_included = key in include
        if key in texts and texts[key].strip() != item.text:
            item.text = _line_text(texts[key])
            item.text_html = render_markdown(item.text)
            dirty = True
        if dirty:
            changed.append(item)
    PostMortemTimelineItem.objects.bulk_create(created)
    PostMortemTimelineItem.objects.bulk_update(changed, ["text", "text_html", "is_included"])
    return postmortem


@transaction.atomic
def add_timeline_item(*, postmortem: PostMortem, by, occurred_at: datetime, text: str) -> PostMortemTimelineItem:
    """A line the incident timeline lacks (e.g. the deploy that caused it, found during the review)."""
    _require_edit(by, postmortem)
    text = (text or "").strip()
    if not text:
        raise DomainError("Say what happened.", field="text")
    if occurred_at is None:
        raise DomainError("Say when it happened.", field="occurred_at")
    postmortem = _lock(postmortem)
    _require_editable(postmortem, field="text")
    check_timeline_time(postmortem.incident, occurred_at)
    text = text[:TIMELINE_TEXT_MAX]
    return PostMortemTimelineItem.objects.create(
        postmortem=postmortem, occurred_at=occurred_at, text=text, text_html=render_markdown(text), is_included=True
    )


# --- meeting ------------------------------------------------------------------------------------------------


@transaction.atomic
def schedule_meeting(
    *, postmortem: PostMortem, by, meeting_at: datetime, attendees: Iterable | None = None, location: str = ""
) -> PostMortem:
    """Set the meeting time and attendees (None keeps the current list), and tick the closure checklist's
    "Post-mortem scheduled"."""
    _require_edit(by, postmortem)
    if meeting_at is None:
        raise DomainError("Choose the meeting time.", field="meeting_at")
    postmortem = _lock(postmortem)
    _require_editable(postmortem, field="meeting_at")
    check_meeting_time(postmortem.incident, meeting_at)
    was_scheduled = postmortem.meeting_at is not None
    postmortem.meeting_at = meeting_at
    postmortem.meeting_location = (location or "").strip()[:200]
    postmortem.save(update_fields=["meeting_at", "meeting_location", "updated_at"])
    if attendees is not None:
        postmortem.attendees.set(list(attendees))
    incident = postmortem.incident
    timeline.record(
        timeline.postmortem_meeting_scheduled(incident, postmortem=postmortem, rescheduled=was_scheduled, by=by)
    )
    # The closure checklist's "Post-mortem scheduled" (and recovery's "Schedule post-mortem") are now facts.
    record_checklist_fact(incident=incident, fact="postmortem_scheduled")
    return postmortem


# --- lifecycle ----------------------------------------------------------------------------------------------


@transaction.atomic
def change_postmortem_status(*, postmortem: PostMortem, to: str, by) -> PostMortem:
    """Draft -> In review -> Published (or back to Draft from review). Publishing is for the Incident
    Commander, the post-mortem owner and managers, and emails the report after commit."""
    try:
        new = PostMortemStatus(to)
    except ValueError:
        raise DomainError(f"Unknown post-mortem status {to!r}.", field="status")
    _require_edit(by, postmortem)
    postmortem = _lock(postmortem)
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
        timeline.postmortem_status_changed(
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
    _require_edit(by, postmortem)
    postmortem = _lock(postmortem)
    if not postmortem.is_published:
        raise InvalidTransition("Only a published post-mortem can be sent.", field="status")
    timeline.record(timeline.postmortem_report_resent(postmortem.incident, postmortem=postmortem, by=by))
    _enqueue_report(postmortem)
    return postmortem


def mark_report_sent(*, postmortem_id: int) -> None:
    PostMortem.objects.filter(pk=postmortem_id).update(report_sent_at=timezone.now())


# --- action items ------------------------------------------------------------------------------------------


def _choice(value: str, choices, field: str) -> str:
    if value not in choices.values:
        allowed = ", ".join(choices.labels)
        raise DomainError(f"Choose one of: {allowed}.", field=field)
    return value


def check_owner_sees_incident(owner, incident: Incident) -> None:
    """An owner gets emails naming the incident and links to it: they must be able to see it (a restricted
    incident: its responders, the security team, admins)."""
    if not incident.is_visible_to(owner):
        raise DomainError(
            f"{_name(owner)} cannot see {incident.reference} (restricted): add them to its responders first, "
            "or choose someone who can see it.",
            field="owner",
        )


def _owner_person(owner):
    return Person.objects.filter(user=owner).first()


@transaction.atomic
def add_action_item(
    *,
    postmortem: PostMortem,
    by,
    title: str,
    owner,
    due_date: date,
    description: str = "",
    priority: str = ActionItemPriority.MEDIUM,
    kind: str = ActionItemType.PREVENT,
) -> ActionItem:
    _require_edit(by, postmortem)
    title = (title or "").strip()
    if not title:
        raise DomainError("Give the action item a title.", field="title")
    if owner is None or not owner.is_active:
        raise DomainError("Choose an active owner.", field="owner")
    check_owner_sees_incident(owner, postmortem.incident)
    if due_date is None:
        raise DomainError("Choose a due date.", field="due_date")
    check_due_date(due_date)
    _choice(priority, ActionItemPriority, "priority")
    _choice(kind, ActionItemType, "kind")
    postmortem = _lock(postmortem)
    item = ActionItem.objects.create(
        postmortem=postmortem,
        incident=postmortem.incident,
        title=title[:200],
        description=(description or "").strip(),
        owner=owner,
        owner_person=_owner_person(owner),
        due_date=due_date,
        priority=priority,
        kind=kind,
        created_by=by,
    )
    timeline.record(timeline.action_item_added(postmortem.incident, item=item, by=by))
    return item


def _lock_item(item: ActionItem) -> ActionItem:
    Incident.objects.select_for_update().filter(pk=item.incident_id).values_list("pk", flat=True).first()
    return ActionItem.objects.select_for_update(of=("self",)).select_related("postmortem", "owner").get(pk=item.pk)


def _require_item_edit(user, item: ActionItem) -> None:
    if user is not None and not (access.can_respond(user) or user.pk == item.owner_id):
        raise PermissionDenied("Only responders and the item's owner can change an action item.")


@transaction.atomic
def update_action_item(
    *,
    item: ActionItem,
    by,
    title: str | None = None,
    description: str | None = None,
    owner=None,
    due_date: date | None = None,
    priority: str | None = None,
    kind: str | None = None,
) -> ActionItem:
    """Change an action item's details. A new due date re-arms both reminders (they fire once per date)."""
    _require_item_edit(by, item)
    item = _lock_item(item)
    if title is not None:
        if not title.strip():
            raise DomainError("Give the action item a title.", field="title")
        item.title = title.strip()[:200]
    if description is not None:
        item.description = description.strip()
    if owner is not None and owner.pk != item.owner_id:
        if not owner.is_active:
            raise DomainError("Choose an active owner.", field="owner")
        check_owner_sees_incident(owner, item.incident)
        item.owner, item.owner_person = owner, _owner_person(owner)
        item.reminded_before_at = item.reminded_overdue_at = None
    if due_date is not None and due_date != item.due_date:
        check_due_date(due_date)
        item.due_date = due_date
        item.reminded_before_at = item.reminded_overdue_at = None
    if priority is not None:
        item.priority = _choice(priority, ActionItemPriority, "priority")
    if kind is not None:
        item.kind = _choice(kind, ActionItemType, "kind")
    item.save()
    return item


@transaction.atomic
def change_action_item_status(*, item: ActionItem, to: str, by) -> ActionItem:
    _choice(to, ActionItemStatus, "status")
    _require_item_edit(by, item)
    item = _lock_item(item)
    if item.status == to:
        return item  # a double click: already there
    old = ActionItemStatus(item.status)
    item.status = to
    item.completed_at = timezone.now() if to in (ActionItemStatus.DONE, ActionItemStatus.WONT_DO) else None
    item.save(update_fields=["status", "completed_at"])
    timeline.record(
        timeline.action_item_status_changed(item.incident, item=item, old=old, new=ActionItemStatus(to), by=by)
    )
    return item


# --- reminders (called by the beat tick) ------------------------------------------------------------------


@transaction.atomic
def send_due_reminders(*, now: datetime | None = None, limit: int = REMINDER_BATCH) -> dict[str, int]:
    """Claim due reminders with FOR UPDATE SKIP LOCKED, stamp them (so each fires once, even with two ticks
    running at once) and queue the emails after commit. Overdue wins over "due soon": an item found already
    overdue gets only the overdue reminder."""
    send_action_item_reminder = registered_task("postmortems.tasks.send_action_item_reminder")
    send_schedule_reminder = registered_task("postmortems.tasks.send_schedule_reminder")
    now = now or timezone.now()
    today = timezone.localdate(now)
    counts = {"overdue": 0, "before_due": 0, "schedule": 0}

    overdue = list(
        ActionItem.objects.select_for_update(skip_locked=True)
        .filter(status__in=("open", "in_progress"), reminded_overdue_at__isnull=True, due_date__lt=today)
        .order_by("due_date", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if overdue:
        ActionItem.objects.filter(pk__in=overdue).update(reminded_overdue_at=now)
        ActionItem.objects.filter(pk__in=overdue, reminded_before_at__isnull=True).update(reminded_before_at=now)
    for pk in overdue:
        transaction.on_commit(partial(send_action_item_reminder.delay, pk, "overdue"))
    counts["overdue"] = len(overdue)

    soon = list(
        ActionItem.objects.select_for_update(skip_locked=True)
        .filter(
            status__in=("open", "in_progress"),
            reminded_before_at__isnull=True,
            due_date__gte=today,
            due_date__lte=today + timedelta(days=REMIND_DAYS_BEFORE_DUE),
        )
        .order_by("due_date", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if soon:
        ActionItem.objects.filter(pk__in=soon).update(reminded_before_at=now)
    for pk in soon:
        transaction.on_commit(partial(send_action_item_reminder.delay, pk, "before_due"))
    counts["before_due"] = len(soon)

    unscheduled = list(
        PostMortem.objects.select_for_update(skip_locked=True)
        .filter(meeting_at__isnull=True, schedule_reminded_at__isnull=True, due_at__lte=now)
        .exclude(status=PostMortemStatus.PUBLISHED)
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if unscheduled:
        PostMortem.objects.filter(pk__in=unscheduled).update(schedule_reminded_at=now)
    for pk in unscheduled:
        transaction.on_commit(partial(send_schedule_reminder.delay, pk))
    counts["schedule"] = len(unscheduled)
    return counts
