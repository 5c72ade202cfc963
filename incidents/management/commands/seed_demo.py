"""Demo data for `make run`: users with known passwords, the service catalogue, the guide's worked example
("API Slow Response Times", P1, 2025-01-15) and a handful of other incidents across severities and statuses.

The incidents are a table (demo_incidents.json) of how each was declared and what responders did, in order.
Everything is written through incidents.services, as the portal itself would; where a service stamps "now"
(declared_at, status times, posted_at) the rows are moved back to the story's time afterwards. Re-running is
safe: users and services are updated in place and an incident whose title already exists is left alone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.contrib.auth.models import Group, User
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from incidents import access
from incidents.models import (
    ChecklistItem,
    EntryKind,
    EventType,
    Incident,
    RoleAssignment,
    Runbook,
    Service,
    SeverityPolicy,
    StatusUpdate,
    TimelineEntry,
)
from incidents.services import status as status_services
from incidents.services.checklist import tick_checklist_item
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.roles import assign_role
from incidents.services.updates import post_status_update

# username, password, first name, last name, groups, is_staff, is_superuser, what they are for
DEMO_USERS = [
    ("ic", "ic-demo-pass", "John", "Doe", [access.RESPONDER], False, False, "Incident Commander"),
    ("responder", "responder-demo-pass", "Jane", "Smith", [access.RESPONDER], False, False, "responder, Tech Lead"),
    ("comms", "comms-demo-pass", "Priya", "Patel", [access.RESPONDER], False, False, "Communications Lead"),
    ("scribe", "scribe-demo-pass", "Sam", "Lee", [access.RESPONDER], False, False, "Scribe"),
    (
        "manager",
        "manager-demo-pass",
        "Maria",
        "Garcia",
        [access.INCIDENT_MANAGER],
        True,
        False,
        "incident manager (admin site)",
    ),
    ("admin", "admin-demo-pass", "Alex", "Admin", [access.ADMIN], True, True, "superuser"),
    ("viewer", "viewer-demo-pass", "Victor", "Viewer", [access.VIEWER], False, False, "read only"),
    (
        "security",
        "security-demo-pass",
        "Sofia",
        "Security",
        [access.SECURITY, access.RESPONDER],
        False,
        False,
        "security team (sees restricted incidents)",
    ),
]

DEMO_SERVICES = [
    ("Backend API", "backend-api", "The public REST API behind the web and mobile apps.", "/health", True),
    ("Database", "database", "The primary PostgreSQL cluster.", "", False),
    ("Web App", "web-app", "The browser application users practise in.", "/", True),
    ("Payments", "payments", "Subscriptions, checkout and invoicing.", "", True),
    ("Authentication", "authentication", "Sign-in, sessions and single sign-on.", "", True),
    ("Email", "email", "Transactional email: sign-up, password reset, receipts.", "", True),
    ("CDN", "cdn", "Static assets and edge caching.", "", True),
    ("Background Jobs", "background-jobs", "Queues and workers for scheduled work.", "", False),
]

WORKED_EXAMPLE_TITLE = "API Slow Response Times"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Story:
    """Runs service calls for one incident and moves what they stamped to the story's clock.

    `at(when)` returns a context manager: rows the services create inside it (timeline entries, role
    assignments, status updates) get `when` as their time; entries explicitly back-dated keep theirs."""

    def __init__(self, incident: Incident):
        self.incident = incident
        self.started = timezone.now() - timedelta(minutes=1)

    def at(self, when: datetime):
        return _At(self, when)


class _At:
    def __init__(self, story: Story, when: datetime):
        self.story, self.when = story, when

    def __enter__(self):
        incident = self.story.incident
        self.last_entry = incident.timeline.aggregate(last=Max("id"))["last"] or 0
        self.last_role = incident.role_assignments.aggregate(last=Max("id"))["last"] or 0
        self.last_update = incident.status_updates.aggregate(last=Max("id"))["last"] or 0
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        incident, when = self.story.incident, self.when
        entries = TimelineEntry.objects.filter(incident=incident, id__gt=self.last_entry)
        entries.filter(occurred_at__gte=self.story.started).update(occurred_at=when)
        entries.update(created_at=when)
        RoleAssignment.objects.filter(incident=incident, id__gt=self.last_role).update(assigned_at=when)
        RoleAssignment.objects.filter(
            incident=incident, relieved_at__gte=self.story.started, id__lte=self.last_role
        ).update(relieved_at=when)
        StatusUpdate.objects.filter(incident=incident, id__gt=self.last_update).update(posted_at=when)
        ChecklistItem.objects.filter(incident=incident, checked_at__gte=self.story.started).update(checked_at=when)
        incident.responder_links.filter(added_at__gte=self.story.started).update(added_at=when)
        return False


# --- the demo incidents, as data -----------------------------------------------------------------------------
#
# demo_incidents.json, one object per incident: how it was declared (`declared`: {"at": "YYYY-MM-DD HH:MM"} in UTC,
# {"days_ago": n} rounded to the minute, or {"minutes_ago": n}), then its `steps` in order, each
# [minutes after the declaration, verb, arguments...] (see Command._step; people by username, services by slug),
# then `stamps`: the incident's own times, in minutes after the declaration. Story moves what each step's services
# stamped "now" to the step's time.

INCIDENTS = json.loads((Path(__file__).parent / "demo_incidents.json").read_text(encoding="utf-8"))


def declared_at(when: dict, now: datetime) -> datetime:
    if "at" in when:
        return utc(when["at"])
    if "days_ago" in when:
        return (now - timedelta(days=when["days_ago"])).replace(second=0, microsecond=0)
    return now - timedelta(minutes=when["minutes_ago"])


def minutes(value: int) -> timedelta:
    return timedelta(minutes=value)


def finish_worked_example(incident: Incident) -> None:
    """What the guide's template says beyond what the services record."""
    updates = StatusUpdate.objects.filter(incident=incident)
    updates.filter(kind="external", status="investigating").update(next_update_at=utc("2025-01-15 15:05"))
    updates.filter(kind="internal").update(next_update_at=utc("2025-01-15 14:53"))
    updates.filter(kind="external", status="monitoring").update(next_update_at=utc("2025-01-15 15:40"))
    updates.filter(status="resolved").update(next_update_at=None)
    # The guide's post-mortem timeline: these are its key events.
    incident.timeline.exclude(kind=EntryKind.CHECKLIST).filter(
        body__regex=r"(Database migration deployed|Slow response alerts|declared|Root cause|Fix deployed|"
        r"Monitoring shows|Incident resolved)"
    ).update(is_key_event=True)
    # The scribe typed the alert and the change in as notes; on the guide's timeline they are the alert and the
    # recent change.
    incident.timeline.filter(body__startswith="Slow response alerts").update(
        kind=EntryKind.ALERT, event_type=EventType.ALERT_ATTACHED
    )
    incident.timeline.filter(body__startswith="Database migration deployed").update(
        kind=EntryKind.ALERT, event_type=EventType.CHANGE_DETECTED
    )


FINISH = {"worked_example": finish_worked_example}


class Command(BaseCommand):
    help = "Load demo users, services and incidents (idempotent). Prints the demo logins."

    def handle(self, *args, **options):
        users = self.seed_users()
        service_by_slug = self.seed_services()
        if "seed_oncall_demo" in get_commands():
            # The on-call area's people, teams and rotations, linked to the users above.
            call_command("seed_oncall_demo", stdout=self.stdout, stderr=self.stderr)
        created = []
        for spec in INCIDENTS:
            incident = self.seed_incident(spec, users, service_by_slug)
            if incident is not None:
                created.append(incident)
        self.report(created)

    # --- people and services ----------------------------------------------------------------------------------

    @transaction.atomic
    def seed_users(self) -> dict[str, User]:
        users = {}
        for username, password, first, last, groups, is_staff, is_superuser, _role in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.first_name, user.last_name = first, last
            user.email = f"{username}@example.com"
            user.is_active, user.is_staff, user.is_superuser = True, is_staff, is_superuser
            # Reset every run, so the printed logins always work.
            user.set_password(password)
            user.save()
            user.groups.add(*Group.objects.filter(name__in=groups))
            users[username] = user
        return users

    @transaction.atomic
    def seed_services(self) -> dict[str, Service]:
        services_by_slug = {}
        for name, slug, description, health_path, is_public in DEMO_SERVICES:
            service, _ = Service.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "description": description,
                    "health_check_url": f"https://{slug}.example.com{health_path}" if health_path else "",
                    "is_public": is_public,
                },
            )
            services_by_slug[slug] = service
        return services_by_slug

    # --- incidents -------------------------------------------------------------------------------------------

    @staticmethod
    def _exists(title: str) -> bool:
        return Incident.objects.filter(title=title).exists()

    @staticmethod
    def _restamp(incident: Incident, **fields) -> None:
        Incident.objects.filter(pk=incident.pk).update(**fields)
        incident.refresh_from_db()

    def _declare(self, *, declared_at: datetime, detected_at: datetime, **kwargs) -> tuple[Incident, Story]:
        # Declared now, then moved to the story's clock: the worked example was detected more than a year before
        # today, which declare_incident refuses for a declaration made now.
        incident = status_services.declare_incident(**kwargs)
        severity = incident.severity
        story = Story(incident)
        # declare_incident stamps "now"; the story's incident was declared at declared_at.
        TimelineEntry.objects.filter(incident=incident).update(occurred_at=declared_at, created_at=declared_at)
        RoleAssignment.objects.filter(incident=incident).update(assigned_at=declared_at)
        incident.responder_links.update(added_at=declared_at)
        incident.runbook_links.update(attached_at=declared_at)
        self._restamp(
            incident,
            detected_at=detected_at,
            declared_at=declared_at,
            response_due_at=severity.response_due_at(declared_at),
            next_update_due_at=severity.next_update_due_at(declared_at),
        )
        return incident, story

    def _redraft_postmortem(self, incident: Incident, by) -> None:
        """Resolving drafted the post-mortem from the times the services stamped, before the story's clock was
        applied; the post-mortems area (optional for the incidents demo) drafts it again from the restamped record."""
        if "redraft_demo_postmortem" in get_commands():
            call_command(
                "redraft_demo_postmortem",
                incident.reference,
                by=by.get_username(),
                stdout=self.stdout,
                stderr=self.stderr,
            )

    def _tick_phase(self, incident: Incident, phase: str, by, *, count: int | None = None) -> None:
        items = list(incident.checklist_items.filter(phase=phase).order_by("position"))
        for item in items[:count]:
            tick_checklist_item(item=item, by=by)

    @transaction.atomic
    def seed_incident(self, spec: dict, users, svc) -> Incident | None:
        if self._exists(spec["title"]):
            return None
        declared = declared_at(spec["declared"], timezone.now())
        runbook = spec.get("runbook")
        incident, story = self._declare(
            title=spec["title"],
            severity=SeverityPolicy.objects.get(level=spec["level"]),
            by=users[spec["by"]],
            summary=spec["summary"],
            services=[svc[slug] for slug in spec["services"]],
            detection_source=spec["detection_source"],
            impact=spec["impact"],
            users_affected_percent=spec.get("users_affected_percent"),
            is_restricted=spec.get("is_restricted", False),
            detected_at=declared - minutes(spec["detected_minutes_before"]),
            declared_at=declared,
            runbook=Runbook.objects.get(slug=runbook) if runbook else None,
        )
        steps = spec.get("steps", [])
        for offset in dict.fromkeys(step[0] for step in steps):
            with story.at(declared + minutes(offset)):
                for _offset, verb, *args in (step for step in steps if step[0] == offset):
                    self._step(incident, declared, users, svc, verb, *args)
        stamps = spec.get("stamps", {})
        if stamps:
            self._restamp(
                incident, **{name: None if at is None else declared + minutes(at) for name, at in stamps.items()}
            )
        if "finish" in spec:
            FINISH[spec["finish"]](incident)
        if "redraft_postmortem_by" in spec:
            self._redraft_postmortem(incident, users[spec["redraft_postmortem_by"]])
        return incident

    def _step(self, incident: Incident, declared: datetime, users, svc, verb: str, *args) -> None:
        """One service call of a demo incident's story, as a responder would make it from the incident page."""
        if verb == "acknowledge":
            (by,) = args
            status_services.acknowledge_incident(incident=incident, by=users[by])
        elif verb == "role":
            role, holder, by = args
            assign_role(incident=incident, role=role, holder=users[holder], by=users[by])
        elif verb == "note":
            by, body, options = args
            occurred = options.get("occurred")
            add_timeline_entry(
                incident=incident,
                by=users[by],
                body=body,
                occurred_at=declared + minutes(occurred) if occurred is not None else None,
                kind=options.get("kind", EntryKind.NOTE),
            )
        elif verb == "tick":
            phase, by, *count = args
            self._tick_phase(incident, phase, users[by], count=count[0] if count else None)
        elif verb == "update":
            by, fields = args
            fields = dict(fields)
            fields["affected_services"] = [svc[slug] for slug in fields.get("affected_services", ())]
            if "next_update_at" in fields:
                fields["next_update_at"] = declared + minutes(fields["next_update_at"])
            post_status_update(incident=incident, by=users[by], **fields)
        elif verb == "status":
            to, by, note = args
            status_services.change_status(incident=incident, to=to, by=users[by], note=note)
        elif verb == "five_whys":
            by, fields = args
            record_five_whys(incident=incident, by=users[by], **fields)
        else:
            raise ValueError(f"Unknown demo step {verb!r}")

    # --- output ----------------------------------------------------------------------------------------------

    def report(self, created: list[Incident]) -> None:
        write = self.stdout.write
        if created:
            write(f"Created {len(created)} demo incident(s): " + ", ".join(i.reference for i in created))
        else:
            write("Demo incidents already present; nothing new created.")
        write("")
        write("Demo logins (password reset on every run):")
        width = max(len(row[0]) for row in DEMO_USERS)
        for username, password, first, last, _groups, _staff, _super, role in DEMO_USERS:
            write(f"  {username:<{width}}  {password:<22}  {first} {last}, {role}")
        write("Admin site: /admin/ (manager or admin).")
