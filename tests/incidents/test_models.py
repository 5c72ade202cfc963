"""The guide as data (severity table, checklists, runbooks), visible_to, business hours and computed durations.

Expected values are copied from the Incident Response Guide here, independently of the seed migration, so a
typo in either shows up as a failure.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from incidents.business_hours import end_of_next_business_day, is_business_hours, next_business_hours_start
from incidents.models import ChecklistTemplateItem, Incident, Runbook, SeverityPolicy
from incidents.services.roles import add_responder, assign_role
from tests.factories import (
    ResponderFactory,
    SecurityFactory,
    UserFactory,
    ViewerFactory,
    declare,
)

pytestmark = pytest.mark.django_db

# The guide's "Severity Levels" table, its "Examples by Severity" and its internal update frequency.
GUIDE_SEVERITIES = {
    "P0": {
        "name": "Critical",
        "description": "Complete service outage",
        "impact": "All users affected",
        "response_target": timedelta(minutes=15),
        "response_next_business_day": False,
        "escalation_delay": timedelta(0),  # "Immediate"
        "update_cadence": timedelta(minutes=15),
        "examples": [
            "Database server down",
            "Application completely unavailable",
            "Data breach detected",
            "Payment system failure",
            "Authentication system down",
        ],
    },
    "P1": {
        "name": "High",
        "description": "Major feature unavailable",
        "impact": "Large user subset",
        "response_target": timedelta(hours=1),
        "response_next_business_day": False,
        "escalation_delay": timedelta(minutes=30),
        "update_cadence": timedelta(minutes=30),
        "examples": [
            "Critical API endpoints failing",
            "Database performance severely degraded",
            "Memory leak causing crashes",
            "Security vulnerability actively exploited",
        ],
    },
    "P2": {
        "name": "Medium",
        "description": "Minor feature broken",
        "impact": "Small user subset",
        "response_target": timedelta(hours=4),
        "response_next_business_day": False,
        "escalation_delay": timedelta(hours=2),
        "update_cadence": timedelta(hours=1),
        "examples": [
            "Single feature not working",
            "Performance degradation (non-critical)",
            "Intermittent errors affecting some users",
            "Minor security vulnerability",
        ],
    },
    "P3": {
        "name": "Low",
        "description": "Cosmetic or minor issue",
        "impact": "Minimal impact",
        "response_target": None,  # "Next business day"
        "response_next_business_day": True,
        "escalation_delay": None,  # "N/A"
        "update_cadence": None,  # "As needed"
        "examples": ["UI glitches", "Documentation errors", "Minor performance issues", "Feature enhancement requests"],
    },
}

GUIDE_TRIAGE = [
    "Determine severity level",
    "Identify affected systems",
    "Estimate user impact",
    "Check recent changes/deployments",
    "Review monitoring dashboards",
    "Gather initial evidence",
]
GUIDE_DETECTION = [
    "Alert acknowledged",
    "Severity assessed",
    "IC assigned",
    "Incident channel created",
    "Initial assessment completed",
]
GUIDE_RESPONSE = [
    "Team assembled",
    "Investigation started",
    "Status page updated",
    "Internal communication sent",
    "Mitigation implemented",
]
GUIDE_RESOLUTION = [
    "Fix deployed",
    "Verification completed",
    "Monitoring confirmed stable",
    "Status page updated",
    "Users notified",
]
# The guide has two recovery lists: "6. Recovery" (Recovery Checklist) and the "Recovery Phase" of its
# Incident Response Checklist. The portal keeps one recovery checklist: the first list, then the second's
# items that are not already in it ("Post-mortem scheduled" is the first list's "Schedule post-mortem").
GUIDE_RECOVERY_CHECKLIST = [
    "Verify all systems operational",
    "Confirm fix resolves issue",
    "Monitor for regression",
    "Update status page",
    "Notify stakeholders",
    "Schedule post-mortem",
]
GUIDE_RECOVERY_PHASE = [
    "Services fully restored",
    "Documentation completed",
    "Post-mortem scheduled",
    "Action items created",
    "Runbook updated",
]
GUIDE_CLOSURE = [
    "Incident resolved",
    "Monitoring confirms stability (24 hours)",
    'Status page updated to "Resolved"',
    "Internal communication sent",
    "Incident timeline documented",
    "Post-mortem scheduled",
]


def phase_texts(phase):
    return list(ChecklistTemplateItem.objects.filter(phase=phase).order_by("position").values_list("text", flat=True))


# --- the guide as data -------------------------------------------------------------------------------------


def test_seeded_severity_policies_equal_the_guides_table():
    assert list(SeverityPolicy.objects.order_by("rank").values_list("level", flat=True)) == ["P0", "P1", "P2", "P3"]
    for level, expected in GUIDE_SEVERITIES.items():
        policy = SeverityPolicy.objects.get(level=level)
        actual = {field: getattr(policy, field) for field in expected}
        assert actual == expected, level
    assert SeverityPolicy.objects.get(level="P3").pages_out_of_hours is False
    assert all(SeverityPolicy.objects.get(level=level).pages_out_of_hours for level in ("P0", "P1", "P2"))


def test_p0_escalates_immediately_and_p3_never():
    assert SeverityPolicy.objects.get(level="P0").escalates
    assert not SeverityPolicy.objects.get(level="P3").escalates


def test_seeded_checklists_equal_the_guides_checklists():
    assert phase_texts("triage") == GUIDE_TRIAGE
    assert phase_texts("detection") == GUIDE_DETECTION
    assert phase_texts("response") == GUIDE_RESPONSE
    assert phase_texts("resolution") == GUIDE_RESOLUTION
    assert phase_texts("closure") == GUIDE_CLOSURE
    assert phase_texts("recovery") == GUIDE_RECOVERY_CHECKLIST + [
        item for item in GUIDE_RECOVERY_PHASE if item != "Post-mortem scheduled"
    ]
    assert not ChecklistTemplateItem.objects.filter(phase="runbook").exists()


def test_the_five_guide_runbooks_are_seeded_with_symptoms_and_ordered_steps():
    runbooks = {runbook.slug: runbook for runbook in Runbook.objects.prefetch_related("steps")}
    assert set(runbooks) == {
        "database-connection-exhaustion",
        "memory-leak",
        "ddos-attack",
        "data-breach",
        "ssl-certificate-expired",
    }
    guide_symptoms = {
        "database-connection-exhaustion": ['"Too many connections" errors', "Slow API responses", "Timeouts"],
        "memory-leak": ["Increasing memory usage", "Application crashes", "OOM errors"],
        "ddos-attack": ["Unusual traffic spike", "High server load", "Legitimate users cannot access"],
        "ssl-certificate-expired": ["SSL/TLS errors", '"Certificate expired" warnings', "API calls failing"],
    }
    for slug, symptoms in guide_symptoms.items():
        assert runbooks[slug].symptoms == symptoms, slug
    # One command from each of the guide's immediate actions, in order.
    guide_commands = {
        "database-connection-exhaustion": [
            "SHOW max_connections;",
            "GROUP BY application_name",
            "pg_terminate_backend(pid)",
        ],
        "memory-leak": ['grep -E "gunicorn|uvicorn"', "kill -HUP $(cat /var/run/backend.pid)", "watch -n 5"],
        "ddos-attack": ["sort | uniq -c | sort -rn | head -20", "limit_req zone=api burst=20;", "ufw deny from $ip"],
        "data-breach": ["systemctl stop subjunctive-backend", "tar -czf evidence-", 'grep "401\\|403"'],
        "ssl-certificate-expired": [
            "openssl x509 -noout -dates",
            "certbot renew --force-renewal",
            "systemctl reload nginx",
            "curl -I https://",
            "0 0 * * 0 certbot renew --quiet",
        ],
    }
    for slug, commands in guide_commands.items():
        steps = list(runbooks[slug].steps.order_by("position"))
        assert [step.position for step in steps] == [1, 2, 3, 4, 5], slug
        for step, command in zip(steps, commands, strict=False):
            assert command in step.command, (slug, step.position)
    breach = runbooks["data-breach"]
    assert [step.text.split()[0].rstrip(":") for step in breach.steps.order_by("position")] == [
        "ISOLATE",
        "PRESERVE",
        "ASSESS",
        "CONTAIN",
        "NOTIFY",
    ]
    assert "DO NOT" in breach.notes and "delete logs" in breach.notes
    assert breach.suggested_severity.level == "P0"


# --- visible_to --------------------------------------------------------------------------------------------


@pytest.fixture
def incidents_pair(responder):
    public = declare(by=responder, title="Public")
    restricted = declare(by=SecurityFactory(), title="Breach", is_restricted=True)
    return public, restricted


def test_anonymous_none_and_inactive_users_see_nothing(incidents_pair):
    assert not Incident.objects.visible_to(AnonymousUser()).exists()
    assert not Incident.objects.visible_to(None).exists()
    inactive = ViewerFactory(is_active=False)
    assert not Incident.objects.visible_to(inactive).exists()
    inactive_superuser = UserFactory(is_superuser=True, is_active=False)
    assert not Incident.objects.visible_to(inactive_superuser).exists()


def test_viewer_and_other_responders_see_unrestricted_only(incidents_pair):
    public, restricted = incidents_pair
    for user in (ViewerFactory(), ResponderFactory(), UserFactory(groups=[])):
        assert set(Incident.objects.visible_to(user)) == {public}, user


def test_restricted_incident_visible_to_its_responders_security_and_superusers(incidents_pair):
    public, restricted = incidents_pair
    outsider = ResponderFactory()
    assert restricted not in Incident.objects.visible_to(outsider)
    add_responder(incident=restricted, user=outsider, by=restricted.created_by)
    assert restricted in Incident.objects.visible_to(outsider)
    assert set(Incident.objects.visible_to(SecurityFactory())) == {public, restricted}
    assert set(Incident.objects.visible_to(UserFactory(is_superuser=True))) == {public, restricted}


def test_a_role_holder_becomes_a_responder_and_sees_the_restricted_incident(incidents_pair):
    _public, restricted = incidents_pair
    scribe = ResponderFactory()
    assign_role(incident=restricted, role="scribe", holder=scribe, by=restricted.created_by)
    assert restricted in Incident.objects.visible_to(scribe)


def test_visible_to_is_one_query(incidents_pair, django_assert_num_queries):
    viewer = ViewerFactory()
    viewer = type(viewer).objects.get(pk=viewer.pk)  # no cached group lookups
    with django_assert_num_queries(2):  # the security-group lookup, then the incidents
        list(Incident.objects.visible_to(viewer))
    with django_assert_num_queries(1):  # the security lookup is cached on the user
        list(Incident.objects.visible_to(viewer))


# --- business hours ----------------------------------------------------------------------------------------


def at(text, tz=UTC):
    return datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2025-01-13 10:00", "2025-01-14 17:00"),  # Monday -> Tuesday
        ("2025-01-16 23:30", "2025-01-17 17:00"),  # Thursday night -> Friday
        ("2025-01-17 16:00", "2025-01-20 17:00"),  # Friday afternoon -> Monday
        ("2025-01-17 18:00", "2025-01-20 17:00"),  # Friday evening -> Monday
        ("2025-01-18 12:00", "2025-01-20 17:00"),  # Saturday -> Monday
        ("2025-01-19 23:59", "2025-01-20 17:00"),  # Sunday -> Monday
    ],
)
def test_end_of_next_business_day_skips_weekends(settings, moment, expected):
    settings.BUSINESS_TIMEZONE = "UTC"
    settings.BUSINESS_DAYS = [0, 1, 2, 3, 4]
    settings.BUSINESS_DAY_END = "17:00"
    assert end_of_next_business_day(at(moment)) == at(expected)


def test_business_day_is_counted_in_the_business_timezone(settings):
    settings.BUSINESS_TIMEZONE = "Australia/Sydney"
    settings.BUSINESS_DAYS = [0, 1, 2, 3, 4]
    settings.BUSINESS_DAY_END = "17:00"
    # Friday 20:00 UTC is already Saturday 07:00 in Sydney: the next business day is Monday there.
    due = end_of_next_business_day(at("2025-01-17 20:00"))
    assert due.isoformat() == "2025-01-20T17:00:00+11:00"


def test_custom_business_week(settings):
    settings.BUSINESS_TIMEZONE = "UTC"
    settings.BUSINESS_DAYS = [6, 0, 1, 2, 3]  # Sunday to Thursday
    settings.BUSINESS_DAY_END = "17:00"
    assert end_of_next_business_day(at("2025-01-16 10:00")) == at("2025-01-19 17:00")  # Thursday -> Sunday


@pytest.mark.parametrize(
    ("moment", "inside", "next_start"),
    [
        ("2025-01-15 10:00", True, "2025-01-15 10:00"),  # Wednesday, open: now
        ("2025-01-15 08:59", False, "2025-01-15 09:00"),  # before opening, same day
        ("2025-01-15 17:00", False, "2025-01-16 09:00"),  # closing time is outside
        ("2025-01-17 18:00", False, "2025-01-20 09:00"),  # Friday evening -> Monday
        ("2025-01-18 10:00", False, "2025-01-20 09:00"),  # Saturday -> Monday
        ("2025-01-19 08:00", False, "2025-01-20 09:00"),  # Sunday morning -> Monday
    ],
)
def test_business_hours_and_next_opening(settings, moment, inside, next_start):
    settings.BUSINESS_TIMEZONE = "UTC"
    settings.BUSINESS_DAYS = [0, 1, 2, 3, 4]
    settings.BUSINESS_DAY_START, settings.BUSINESS_DAY_END = "09:00", "17:00"
    assert is_business_hours(at(moment)) is inside
    assert next_business_hours_start(at(moment)) == at(next_start)


def test_severity_response_due_uses_target_or_next_business_day(settings):
    settings.BUSINESS_TIMEZONE = "UTC"
    settings.BUSINESS_DAYS = [0, 1, 2, 3, 4]
    friday = at("2025-01-17 16:00")
    assert SeverityPolicy.objects.get(level="P1").response_due_at(friday) == friday + timedelta(hours=1)
    assert SeverityPolicy.objects.get(level="P3").response_due_at(friday) == at("2025-01-20 17:00")
    assert SeverityPolicy.objects.get(level="P3").next_update_due_at(friday) is None


# --- computed values ---------------------------------------------------------------------------------------


def test_durations_are_measured_from_detection_and_declaration(responder):
    incident = declare(by=responder)
    detected = at("2025-01-15 14:32")
    Incident.objects.filter(pk=incident.pk).update(
        detected_at=detected,
        declared_at=at("2025-01-15 14:35"),
        acknowledged_at=at("2025-01-15 14:36"),
        mitigated_at=at("2025-01-15 14:55"),
        resolved_at=at("2025-01-15 16:45"),
    )
    incident.refresh_from_db()
    assert incident.time_to_detect == timedelta(minutes=3)
    assert incident.time_to_acknowledge == timedelta(minutes=1)
    assert incident.time_to_mitigate == timedelta(minutes=23)
    assert incident.time_to_resolve == timedelta(hours=2, minutes=13)
    assert incident.duration == incident.time_to_resolve


def test_unresolved_incident_has_no_resolve_time_and_runs_until_now(responder):
    incident = declare(by=responder)
    assert incident.time_to_resolve is None and incident.time_to_acknowledge is None
    assert incident.duration <= timezone.now() - incident.detected_at + timedelta(seconds=1)


def test_reference_and_status_meaning(responder):
    incident = declare(by=responder)
    assert incident.reference == f"INC-{incident.number}"
    assert str(incident).startswith(incident.reference)
    assert "cause is not yet known" in incident.status_meaning
    assert [s.value for s in incident.allowed_transitions()] == ["identified", "monitoring", "resolved"]
