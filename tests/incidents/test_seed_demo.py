"""manage.py seed_demo: the guide's worked example as the portal would have recorded it, demo incidents across
severities and statuses, demo users whose printed logins work, and nothing duplicated on a second run."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from incidents import access
from incidents.management.commands.seed_demo import DEMO_USERS, WORKED_EXAMPLE_TITLE
from incidents.models import (
    ACTIVE_STATUSES,
    ChecklistPhase,
    EntryKind,
    EventType,
    Incident,
    Role,
    Service,
    Status,
    StatusUpdate,
    TimelineEntry,
)
from incidents.selectors import current_holder

pytestmark = pytest.mark.django_db

# The guide's post-mortem timeline (2025-01-15, UTC).
GUIDE_TIMELINE = [
    ("14:00", "Database migration deployed"),
    ("14:32", "Slow response alerts triggered"),
    ("14:35", "Incident declared"),
    ("14:40", "Root cause identified"),
    ("14:55", "Fix deployed"),
    ("15:10", "Monitoring shows improvement"),
    ("16:45", "Incident resolved"),
]


@pytest.fixture
def seeded():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_prints_logins_that_work(seeded):
    for username, password, *_rest in DEMO_USERS:
        assert f"{username} " in seeded and password in seeded
        user = User.objects.get(username=username)
        assert user.check_password(password), username
        assert user.is_active


def test_demo_users_have_their_roles(seeded):
    users = {user.username: user for user in User.objects.filter(username__in=[row[0] for row in DEMO_USERS])}
    assert access.can_respond(users["ic"]) and access.can_respond(users["responder"])
    assert not access.is_manager(users["responder"])
    manager = users["manager"]
    assert manager.is_staff and access.is_manager(manager) and not manager.is_superuser
    assert manager.has_perm("incidents.change_incident") and manager.has_perm("incidents.change_severitypolicy")
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert access.can_view(users["viewer"]) and not access.can_respond(users["viewer"])
    assert access.is_security(users["security"]) and not access.is_security(users["ic"])


def test_service_catalogue(seeded):
    slugs = set(Service.objects.values_list("slug", flat=True))
    assert {"backend-api", "database", "web-app", "payments", "authentication", "email", "cdn"} <= slugs


def test_worked_example_is_the_guides_p1_with_its_timeline(seeded):
    incident = Incident.objects.get(title=WORKED_EXAMPLE_TITLE)
    assert incident.severity.level == "P1" and incident.status == Status.RESOLVED
    assert incident.users_affected_percent == 30
    assert {service.name for service in incident.services.all()} == {"Backend API", "Database"}
    stamps = {
        "detected_at": "14:32",
        "declared_at": "14:35",
        "identified_at": "14:40",
        "mitigated_at": "14:55",
        "resolved_at": "16:45",
    }
    for field, hhmm in stamps.items():
        value = getattr(incident, field)
        assert value.strftime("%Y-%m-%d %H:%M") == f"2025-01-15 {hhmm}", field
    key_events = list(incident.timeline.filter(is_key_event=True).order_by("occurred_at", "id"))
    for hhmm, words in GUIDE_TIMELINE:
        assert any(
            entry.occurred_at.strftime("%H:%M") == hhmm and words.lower() in entry.body.lower() for entry in key_events
        ), (hhmm, words)
    # Entries were written through the services: rendered HTML and authors are there.
    assert all(entry.body_html for entry in incident.timeline.all())
    # The alert and the recent change the scribe typed in, typed as the guide's timeline has them.
    alerts = incident.timeline.filter(kind=EntryKind.ALERT)
    assert sorted(alerts.values_list("event_type", flat=True)) == [EventType.ALERT_ATTACHED, EventType.CHANGE_DETECTED]
    assert alerts.get(event_type=EventType.CHANGE_DETECTED).body.startswith("Database migration deployed")
    assert current_holder(incident, Role.INCIDENT_COMMANDER).username == "ic"
    assert current_holder(incident, Role.TECHNICAL_LEAD).username == "responder"


def test_worked_example_five_whys_and_updates(seeded):
    incident = Incident.objects.get(title=WORKED_EXAMPLE_TITLE)
    assert incident.five_whys.problem == "API slow response times"
    assert incident.five_whys.whys == [
        "Database queries slow",
        "High CPU on database",
        "Inefficient query",
        "Missing index",
        "Recent migration didn't add index",
    ]
    assert incident.five_whys.root_cause == "Missing index after migration"
    internal = incident.status_updates.get(kind="internal")
    assert "30% of API requests > 5s" in internal.what_we_know
    assert internal.posted_at.strftime("%H:%M") == "14:38"
    external = incident.status_updates.filter(kind="external").order_by("posted_at")
    assert [update.status for update in external] == ["investigating", "monitoring", "resolved"]
    first = external.first()
    assert first.title == "API Performance Issues" and first.is_published
    assert first.next_update_at.strftime("%H:%M") == "15:05"


def test_other_incidents_span_severities_and_statuses(seeded):
    incidents = Incident.objects.select_related("severity")
    active = {(i.severity.level, i.status) for i in incidents if i.status in ACTIVE_STATUSES}
    assert ("P0", Status.INVESTIGATING) in active
    assert any(level == "P2" for level, _ in active)
    assert any(level == "P3" for level, _ in active)
    assert incidents.filter(status=Status.CLOSED).exists()
    closed = incidents.get(status=Status.CLOSED)
    assert not closed.checklist_items.filter(phase=ChecklistPhase.CLOSURE, checked_at__isnull=True).exists()
    assert {i.severity.level for i in incidents} == {"P0", "P1", "P2", "P3"}


def test_restricted_data_breach_is_hidden_from_viewers(seeded):
    breach = Incident.objects.get(is_restricted=True)
    assert breach.severity.level == "P0" and breach.runbook_links.filter(runbook__slug="data-breach").exists()
    assert breach not in Incident.objects.visible_to(User.objects.get(username="viewer"))
    assert breach not in Incident.objects.visible_to(User.objects.get(username="manager"))
    assert breach in Incident.objects.visible_to(User.objects.get(username="security"))


def test_active_demo_incidents_have_deadlines_in_the_recent_past_or_future(seeded):
    for incident in Incident.objects.active():
        assert incident.response_due_at is not None, incident
        assert incident.declared_at >= incident.detected_at, incident


def test_running_twice_duplicates_nothing(seeded):
    counts = (
        Incident.objects.count(),
        TimelineEntry.objects.count(),
        StatusUpdate.objects.count(),
        User.objects.count(),
        Service.objects.count(),
    )
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "nothing new created" in out.getvalue()
    assert (
        Incident.objects.count(),
        TimelineEntry.objects.count(),
        StatusUpdate.objects.count(),
        User.objects.count(),
        Service.objects.count(),
    ) == counts
    # A changed password is reset to the printed one.
    ic = User.objects.get(username="ic")
    ic.set_password("something else")
    ic.save()
    call_command("seed_demo", stdout=StringIO())
    ic.refresh_from_db()
    assert ic.check_password("ic-demo-pass")


def test_demo_post_mortems_follow_the_story_clock(seeded):
    postmortems = pytest.importorskip("postmortems.models")
    for incident in Incident.objects.filter(resolved_at__isnull=False):
        postmortem = postmortems.PostMortem.objects.filter(incident=incident).first()
        assert postmortem is not None, incident
        assert postmortem.due_at == incident.resolved_at + timedelta(hours=48), incident
        assert incident.timeline.filter(body__startswith="Post-mortem drafted").count() == 1, incident
