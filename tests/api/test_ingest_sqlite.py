"""Inbound webhooks on the zero-dependency configuration (DATABASE_URL unset or sqlite://, no Redis): the
general ingestion path runs on SQLite, in a subprocess like `make run`, with the same outcomes as on PostgreSQL."""

import json

from tests.test_project import bare_env, manage, shell

FIXTURES = "tests/api/fixtures"

SCRIPT = """
    import json
    from pathlib import Path

    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone
    from django.test import Client
    from django.test.utils import setup_test_environment

    from incidents.alerting.models import AlertEvent, AlertGroup, RouteAction
    from incidents.alerting.services.integrations import create_integration
    from incidents.models import Incident, Service

    setup_test_environment()  # lets django.test.Client's "testserver" host in
    fixtures = Path("{fixtures}")
    checkout = Service.objects.create(name="Checkout", slug="checkout")
    pagerduty, pd_key = create_integration(kind="pagerduty", name="PagerDuty")
    alertmanager, am_key = create_integration(
        kind="alertmanager", name="Alertmanager", default_action=RouteAction.DECLARE
    )
    client = Client()

    def post(url, name, **headers):
        body = (fixtures / name).read_text().replace("ROUTING_KEY", pd_key)
        response = client.post(url, data=body, content_type="application/json", headers=headers)
        return [response.status_code, response.json()]

    pd_url = "/api/v1/integrations/pagerduty/v2/enqueue"
    am_url = "/api/v1/integrations/alertmanager/"
    auth = {{"authorization": f"Bearer {{am_key}}"}}
    responses = {{
        "pd": [post(pd_url, "pagerduty_trigger.json"), post(pd_url, "pagerduty_trigger.json"),
               post(pd_url, "pagerduty_acknowledge.json"), post(pd_url, "pagerduty_resolve.json")],
        "am": [post(am_url, "alertmanager_firing.json", **auth), post(am_url, "alertmanager_firing.json", **auth),
               post(am_url, "alertmanager_resolved.json", **auth)],
    }}

    def groups(integration):
        return sorted(
            [g.dedup_key, g.status, g.event_count, g.incident.reference if g.incident else None]
            for g in AlertGroup.objects.filter(integration=integration).select_related("incident")
        )

    incidents = [
        [i.reference, i.severity.level, i.detection_source, [s.slug for s in i.services.all()],
         i.timeline.filter(kind="alert").count()]
        for i in Incident.objects.order_by("number")
    ]
    print(json.dumps({{
        "vendor": connection.vendor,
        "responses": responses,
        "pd_groups": groups(pagerduty),
        "am_groups": groups(alertmanager),
        "pd_events": sorted(AlertEvent.objects.filter(integration=pagerduty).values_list("action", flat=True)),
        "am_events": sorted(AlertEvent.objects.filter(integration=alertmanager).values_list("action", flat=True)),
        "incidents": incidents,
        # Times written by raw SQL compare like the ORM's own (naive UTC text on SQLite).
        "seen_last_hour": AlertGroup.objects.filter(
            last_seen_at__gte=timezone.now() - timedelta(hours=1), first_seen_at__lte=timezone.now(),
            resolved_at__gte=timezone.now() - timedelta(hours=1)).count(),
        "pd_acknowledged": AlertGroup.objects.filter(integration=pagerduty, acknowledged_at__isnull=False).count(),
    }}))
"""


def test_webhooks_open_deduplicate_resolve_and_declare_on_sqlite(tmp_path):
    env = bare_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}")
    env["DJANGO_SETTINGS_MODULE"] = "incidentportal.settings"
    env["REDIS_URL"] = ""
    manage("migrate", "--noinput", env=env)
    result = json.loads(shell(SCRIPT.format(fixtures=FIXTURES), env=env).strip().splitlines()[-1])

    assert result["vendor"] == "sqlite"
    pd = result["responses"]["pd"]
    assert [status for status, _ in pd] == [202, 202, 202, 202], pd
    assert {body["dedup_key"] for _, body in pd} == {"samplekeyhere"}
    # One group for the key, acknowledged then resolved, that counted all four events; PagerDuty's default
    # action records only.
    assert result["pd_groups"] == [["samplekeyhere", "resolved", 4, None]]
    assert result["pd_acknowledged"] == 1
    assert result["pd_events"] == ["acknowledge", "resolve", "trigger", "trigger"]

    am = result["responses"]["am"]
    assert [status for status, _ in am] == [202, 202, 202], am
    assert [r["result"] for r in am[0][1]["results"]] == ["opened", "opened"]
    assert [r["result"] for r in am[1][1]["results"]] == ["deduplicated", "deduplicated"]
    assert [r["result"] for r in am[2][1]["results"]] == ["resolved", "resolved"]
    # The "declare" route declared one incident for the service, and both groups belong to it; its timeline has
    # one alert entry for the opening batch and one for the resolving batch (duplicates add none).
    assert result["incidents"] == [["INC-1", "P1", "monitoring_alert", ["checkout"], 2]]
    assert result["am_groups"] == [
        ["c3a1e2b4d5f60718", "resolved", 3, "INC-1"],
        ["d4b2f3c5e6071829", "resolved", 3, "INC-1"],
    ]
    assert am[0][1]["results"][0]["incident"] == "INC-1"
    assert result["am_events"] == ["resolve"] * 2 + ["trigger"] * 4
    assert result["seen_last_hour"] == 3
