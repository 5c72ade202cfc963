"""Demo data for `make run`: users with known passwords, the service catalogue, the guide's worked example
("API Slow Response Times", P1, 2025-01-15) and a handful of other incidents across severities and statuses.

Everything is written through incidents.services, as the portal itself would; where a service stamps "now"
(declared_at, status times, posted_at) the rows are moved back to the story's time afterwards. Re-running is
safe: users and services are updated in place and an incident whose title already exists is left alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import Group, User
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from incidents import access
from incidents.models import (
    ChecklistItem,
    ChecklistPhase,
    DetectionSource,
    EntryKind,
    EventType,
    Incident,
    Role,
    RoleAssignment,
    Runbook,
    Service,
    SeverityPolicy,
    Status,
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


class Command(BaseCommand):
    help = "Load demo users, services and incidents (idempotent). Prints the demo logins."

    def handle(self, *args, **options):
        users = self.seed_users()
        service_by_slug = self.seed_services()
        if "seed_oncall_demo" in get_commands():
            # The on-call area's people, teams and rotations, linked to the users above.
            call_command("seed_oncall_demo", stdout=self.stdout, stderr=self.stderr)
        created = []
        for build in (
            self.worked_example,
            self.ssl_certificate_closed,
            self.payments_outage,
            self.memory_leak_monitoring,
            self.intermittent_errors,
            self.ui_glitch,
            self.data_breach,
        ):
            incident = build(users, service_by_slug)
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
    def worked_example(self, users, svc) -> Incident | None:
        """The guide's worked example, as its post-mortem template tells it (2025-01-15, all times UTC)."""
        if self._exists(WORKED_EXAMPLE_TITLE):
            return None
        ic, lead, comms, scribe = users["ic"], users["responder"], users["comms"], users["scribe"]
        incident, story = self._declare(
            title=WORKED_EXAMPLE_TITLE,
            severity=SeverityPolicy.objects.get(level="P1"),
            by=ic,
            summary="API responses slowed to more than 5 s after a database migration dropped a required index.",
            services=[svc["backend-api"], svc["database"]],
            detection_source=DetectionSource.PERFORMANCE,
            impact="30% of API requests > 5s response time; some users see delays when loading exercises.",
            users_affected_percent=30,
            detected_at=utc("2025-01-15 14:32"),
            declared_at=utc("2025-01-15 14:35"),
        )
        with story.at(utc("2025-01-15 14:36")):
            status_services.acknowledge_incident(incident=incident, by=ic)
            assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=ic)
            assign_role(incident=incident, role=Role.COMMUNICATIONS_LEAD, holder=comms, by=ic)
            assign_role(incident=incident, role=Role.SCRIBE, holder=scribe, by=ic)
        self._restamp(incident, acknowledged_at=utc("2025-01-15 14:36"))
        with story.at(utc("2025-01-15 14:37")):
            # The scribe records what happened before the incident was declared.
            add_timeline_entry(
                incident=incident,
                by=scribe,
                body="Database migration deployed (recent change).",
                occurred_at=utc("2025-01-15 14:00"),
            )
            add_timeline_entry(
                incident=incident,
                by=scribe,
                body="Slow response alerts triggered: p95 latency on the Backend API above 5 s.",
                occurred_at=utc("2025-01-15 14:32"),
            )
            self._tick_phase(incident, ChecklistPhase.TRIAGE, ic)
            self._tick_phase(incident, ChecklistPhase.DETECTION, ic)
        with story.at(utc("2025-01-15 14:38")):
            post_status_update(
                incident=incident,
                kind="internal",
                status="investigating",
                by=comms,
                what_we_know="Impact: 30% of API requests > 5s response time.\n"
                "Systems affected: Backend API, Database.\n"
                "Recent changes: database migration deployed at 14:00 UTC.",
                what_we_are_doing="Investigating database query performance; checking for deadlocks; "
                "reviewing the recent migration.",
                impact="30% of API requests > 5s response time.",
            )
            post_status_update(
                incident=incident,
                kind="external",
                status="investigating",
                by=comms,
                title="API Performance Issues",
                description="We are currently investigating reports of slow API response times. "
                "Some users may experience delays when loading exercises.",
                affected_services=[svc["backend-api"]],
                publish=True,
            )
        StatusUpdate.objects.filter(incident=incident, kind="external").update(next_update_at=utc("2025-01-15 15:05"))
        StatusUpdate.objects.filter(incident=incident, kind="internal").update(next_update_at=utc("2025-01-15 14:53"))
        with story.at(utc("2025-01-15 14:40")):
            status_services.change_status(
                incident=incident,
                to=Status.IDENTIFIED,
                by=ic,
                note="Root cause identified: missing index on `user_progress` after the migration.",
            )
            record_five_whys(
                incident=incident,
                problem="API slow response times",
                whys=[
                    "Database queries slow",
                    "High CPU on database",
                    "Inefficient query",
                    "Missing index",
                    "Recent migration didn't add index",
                ],
                root_cause="Missing index after migration",
                by=lead,
            )
            self._tick_phase(incident, ChecklistPhase.RESPONSE, ic)
        self._restamp(incident, identified_at=utc("2025-01-15 14:40"))
        with story.at(utc("2025-01-15 14:55")):
            add_timeline_entry(
                incident=incident,
                by=lead,
                kind=EntryKind.ACTION,
                body="Fix deployed: `CREATE INDEX CONCURRENTLY` on `user_progress`.",
            )
        with story.at(utc("2025-01-15 15:10")):
            status_services.change_status(
                incident=incident, to=Status.MONITORING, by=ic, note="Monitoring shows improvement."
            )
            post_status_update(
                incident=incident,
                kind="external",
                status="monitoring",
                by=comms,
                title="API Performance Issues",
                description="A fix has been deployed and response times are returning to normal. "
                "We are monitoring the results.",
                affected_services=[svc["backend-api"]],
                publish=True,
            )
        with story.at(utc("2025-01-15 16:45")):
            status_services.change_status(incident=incident, to=Status.RESOLVED, by=ic, note="Incident resolved.")
            post_status_update(
                incident=incident,
                kind="external",
                status="resolved",
                by=comms,
                title="API Performance Issues",
                description="API response times are back to normal. This incident has been resolved.",
                affected_services=[svc["backend-api"]],
                publish=True,
            )
            self._tick_phase(incident, ChecklistPhase.RESOLUTION, lead)
            self._tick_phase(incident, ChecklistPhase.RECOVERY, ic, count=6)
        self._restamp(
            incident, mitigated_at=utc("2025-01-15 14:55"), resolved_at=utc("2025-01-15 16:45"), next_update_due_at=None
        )
        StatusUpdate.objects.filter(incident=incident, kind="external", status="monitoring").update(
            next_update_at=utc("2025-01-15 15:40")
        )
        StatusUpdate.objects.filter(incident=incident, status="resolved").update(next_update_at=None)
        # The guide's post-mortem timeline: these are its key events.
        incident.timeline.exclude(kind=EntryKind.CHECKLIST).filter(
            body__regex=r"(Database migration deployed|Slow response alerts|declared|Root cause|Fix deployed|"
            r"Monitoring shows|Incident resolved)"
        ).update(is_key_event=True)
        # The scribe typed the alert in as a note; on the guide's timeline it is the alert.
        incident.timeline.filter(body__startswith="Slow response alerts").update(
            kind=EntryKind.ALERT, event_type=EventType.ALERT_ATTACHED
        )
        self._redraft_postmortem(incident, ic)
        return incident

    @transaction.atomic
    def ssl_certificate_closed(self, users, svc) -> Incident | None:
        """A closed P1 from last week: runbook attached, every checklist done, closed through the gate."""
        title = "SSL certificate expired on api.example.com"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = (now - timedelta(days=8)).replace(second=0, microsecond=0)
        ic, lead = users["ic"], users["responder"]
        incident, story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P1"),
            by=ic,
            summary="The API's TLS certificate expired; browsers and API clients refused to connect.",
            services=[svc["backend-api"], svc["cdn"]],
            detection_source=DetectionSource.HEALTH_CHECK,
            impact="All API calls from clients that verify certificates failed.",
            users_affected_percent=85,
            detected_at=declared - timedelta(minutes=4),
            declared_at=declared,
            runbook=Runbook.objects.get(slug="ssl-certificate-expired"),
        )
        with story.at(declared + timedelta(minutes=2)):
            status_services.acknowledge_incident(incident=incident, by=lead)
            assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=ic)
        with story.at(declared + timedelta(minutes=10)):
            self._tick_phase(incident, ChecklistPhase.RUNBOOK, lead)
            status_services.change_status(
                incident=incident, to=Status.IDENTIFIED, by=ic, note="Auto-renewal cron job was missing."
            )
        with story.at(declared + timedelta(minutes=18)):
            status_services.change_status(incident=incident, to=Status.MONITORING, by=ic, note="Certificate renewed.")
        with story.at(declared + timedelta(minutes=50)):
            status_services.change_status(incident=incident, to=Status.RESOLVED, by=ic)
        with story.at(declared + timedelta(days=1, hours=1)):
            for phase in ChecklistPhase.values:
                self._tick_phase(incident, phase, ic)
            status_services.change_status(incident=incident, to=Status.CLOSED, by=ic, note="Stable for 24 hours.")
        self._restamp(
            incident,
            acknowledged_at=declared + timedelta(minutes=2),
            identified_at=declared + timedelta(minutes=10),
            mitigated_at=declared + timedelta(minutes=18),
            resolved_at=declared + timedelta(minutes=50),
            closed_at=declared + timedelta(days=1, hours=1),
            next_update_due_at=None,
        )
        self._redraft_postmortem(incident, ic)
        return incident

    @transaction.atomic
    def payments_outage(self, users, svc) -> Incident | None:
        """An active P0, minutes old: acknowledged, roles filled, first updates out."""
        title = "Payment system failure: checkout returns 502"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = now - timedelta(minutes=9)
        ic, lead, comms = users["ic"], users["responder"], users["comms"]
        incident, story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P0"),
            by=ic,
            summary="Every checkout attempt fails with a 502 from the payments gateway.",
            services=[svc["payments"], svc["backend-api"]],
            detection_source=DetectionSource.ERROR_RATE,
            impact="No user can subscribe or renew.",
            users_affected_percent=100,
            detected_at=now - timedelta(minutes=11),
            declared_at=declared,
        )
        with story.at(declared + timedelta(minutes=1)):
            status_services.acknowledge_incident(incident=incident, by=ic)
            assign_role(incident=incident, role=Role.TECHNICAL_LEAD, holder=lead, by=ic)
            assign_role(incident=incident, role=Role.COMMUNICATIONS_LEAD, holder=comms, by=ic)
            self._tick_phase(incident, ChecklistPhase.TRIAGE, ic, count=3)
            self._tick_phase(incident, ChecklistPhase.DETECTION, ic, count=3)
        self._restamp(incident, acknowledged_at=declared + timedelta(minutes=1))
        with story.at(declared + timedelta(minutes=4)):
            add_timeline_entry(
                incident=incident,
                by=lead,
                body="Gateway returns 502 for every `POST /charges`; the provider's status page shows no incident.",
            )
            post_status_update(
                incident=incident,
                kind="internal",
                status="investigating",
                by=comms,
                what_we_know="Checkout fails for every user since about 11 minutes ago.",
                what_we_are_doing="Checking the payments gateway credentials and the last deploy.",
                impact="No user can subscribe or renew.",
                eta="Unknown",
                next_update_at=now + timedelta(minutes=10),
            )
            post_status_update(
                incident=incident,
                kind="external",
                status="investigating",
                by=comms,
                title="Checkout unavailable",
                description="Payments are failing. Existing subscriptions are not affected.",
                workaround="Please retry later; you will not be charged twice.",
                affected_services=[svc["payments"]],
                next_update_at=now + timedelta(minutes=25),
                publish=True,
            )
        return incident

    @transaction.atomic
    def memory_leak_monitoring(self, users, svc) -> Incident | None:
        """An active P1 in Monitoring, with the memory-leak runbook attached and half worked through."""
        title = "Memory leak causing API worker crashes"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = now - timedelta(hours=3)
        lead, scribe = users["responder"], users["scribe"]
        incident, story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P1"),
            by=lead,
            summary="API workers grow to the memory limit and are OOM-killed every 20 minutes.",
            services=[svc["backend-api"]],
            detection_source=DetectionSource.MONITORING_ALERT,
            impact="Requests in flight fail when a worker is killed; about 5% of requests error.",
            users_affected_percent=5,
            detected_at=declared - timedelta(minutes=6),
            declared_at=declared,
            runbook=Runbook.objects.get(slug="memory-leak"),
        )
        with story.at(declared + timedelta(minutes=3)):
            status_services.acknowledge_incident(incident=incident, by=lead)
            assign_role(incident=incident, role=Role.SCRIBE, holder=scribe, by=lead)
            self._tick_phase(incident, ChecklistPhase.RUNBOOK, lead, count=3)
        self._restamp(incident, acknowledged_at=declared + timedelta(minutes=3))
        with story.at(declared + timedelta(minutes=40)):
            status_services.change_status(
                incident=incident, to=Status.IDENTIFIED, by=lead, note="Leak traced to an unbounded in-process cache."
            )
        with story.at(declared + timedelta(hours=2)):
            status_services.change_status(
                incident=incident, to=Status.MONITORING, by=lead, note="Cache bounded; patch deployed."
            )
            post_status_update(
                incident=incident,
                kind="internal",
                status="monitoring",
                by=lead,
                what_we_know="An unbounded cache grew without limit.",
                what_we_are_doing="Watching worker memory for regressions.",
                next_update_at=now + timedelta(minutes=20),
            )
        self._restamp(
            incident,
            identified_at=declared + timedelta(minutes=40),
            mitigated_at=declared + timedelta(hours=2),
            next_update_due_at=now + timedelta(minutes=20),
        )
        return incident

    @transaction.atomic
    def intermittent_errors(self, users, svc) -> Incident | None:
        """An active P2 whose internal update is overdue (the cadence is hourly)."""
        title = "Intermittent errors saving exercise progress"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = now - timedelta(hours=2)
        responder = users["responder"]
        incident, story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P2"),
            by=responder,
            summary="About 2% of progress saves fail with a timeout.",
            services=[svc["web-app"], svc["database"]],
            detection_source=DetectionSource.SUPPORT_TICKET,
            impact="Some users lose their last answer and must redo it.",
            users_affected_percent=2,
            detected_at=declared - timedelta(minutes=30),
            declared_at=declared,
        )
        with story.at(declared + timedelta(minutes=10)):
            status_services.acknowledge_incident(incident=incident, by=responder)
        self._restamp(incident, acknowledged_at=declared + timedelta(minutes=10))
        with story.at(declared + timedelta(minutes=50)):
            status_services.change_status(
                incident=incident, to=Status.IDENTIFIED, by=responder, note="Lock contention on `user_progress`."
            )
            post_status_update(
                incident=incident,
                kind="internal",
                status="fixing",
                by=responder,
                what_we_know="Saves time out while a nightly report holds row locks.",
                what_we_are_doing="Moving the report to the read replica.",
            )
        self._restamp(
            incident,
            identified_at=declared + timedelta(minutes=50),
            next_update_due_at=declared + timedelta(minutes=110),
        )
        return incident

    @transaction.atomic
    def ui_glitch(self, users, svc) -> Incident | None:
        """A P3 reported by a user: respond by the end of the next business day."""
        title = "Progress chart labels overlap on small screens"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = now - timedelta(hours=5)
        incident, _story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P3"),
            by=users["responder"],
            summary="Axis labels on the progress chart overlap below 400 px width.",
            services=[svc["web-app"]],
            detection_source=DetectionSource.USER_REPORT,
            impact="Cosmetic; no data affected.",
            detected_at=declared - timedelta(hours=1),
            declared_at=declared,
        )
        return incident

    @transaction.atomic
    def data_breach(self, users, svc) -> Incident | None:
        """A restricted P0: only its responders and the security team can see it."""
        title = "Suspicious bulk export of user records"
        if self._exists(title):
            return None
        now = timezone.now()
        declared = now - timedelta(minutes=40)
        security = users["security"]
        incident, story = self._declare(
            title=title,
            severity=SeverityPolicy.objects.get(level="P0"),
            by=security,
            summary="An API token exported 40,000 user records overnight from an unfamiliar address.",
            services=[svc["authentication"], svc["backend-api"]],
            detection_source=DetectionSource.TEAM_MEMBER,
            impact="Possible exposure of user emails and names.",
            is_restricted=True,
            detected_at=declared - timedelta(minutes=15),
            declared_at=declared,
            runbook=Runbook.objects.get(slug="data-breach"),
        )
        with story.at(declared + timedelta(minutes=2)):
            status_services.acknowledge_incident(incident=incident, by=security)
            self._tick_phase(incident, ChecklistPhase.RUNBOOK, security, count=2)
        with story.at(declared + timedelta(minutes=25)):
            status_services.change_status(
                incident=incident, to=Status.IDENTIFIED, by=security, note="The token belonged to a retired script."
            )
            add_timeline_entry(
                incident=incident, by=security, kind=EntryKind.ACTION, body="Token revoked; sessions flushed."
            )
        self._restamp(
            incident,
            acknowledged_at=declared + timedelta(minutes=2),
            identified_at=declared + timedelta(minutes=25),
            next_update_due_at=now + timedelta(minutes=5),
        )
        return incident

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
