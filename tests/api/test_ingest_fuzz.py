"""Junk into every inbound endpoint, authenticated: never a 5xx, never a half-written request.

Hypothesis builds arbitrary JSON and mutations of the documented payloads (wrong types, missing fields, long and
odd strings). A 2xx must have written events; a 4xx nothing."""

import hashlib
import hmac
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.alerting.models import AlertEvent, ChangeEvent
from tests.factories import ServiceFactory

from .factories import fixture_json, make_integration

pytestmark = pytest.mark.django_db

# The suite runs a fixed sample (derandomized: CI never fails on a new random draw). Explore more with e.g.
# FUZZ_EXAMPLES=2000 FUZZ_SEED=random; anything found becomes a named test in test_ingest.py.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 25))
DERANDOMIZE = os.environ.get("FUZZ_SEED") != "random"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=300))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def mutate(document, data):
    """Replace one value somewhere in `document` by arbitrary JSON (or delete it)."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, (*path, index))

    walk(document, ())
    path = data.draw(st.sampled_from(paths[1:]))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    return document


CASES = {
    "alertmanager": ("alertmanager_firing.json", "/api/v1/integrations/alertmanager/"),
    "grafana": ("grafana_firing.json", "/api/v1/integrations/grafana/"),
    "pagerduty": ("pagerduty_trigger.json", "/api/v1/integrations/pagerduty/v2/enqueue"),
    "generic": ("generic_batch.json", "/api/v1/integrations/generic/"),
    "change": ("change_deploy.json", "/api/v1/integrations/change/"),
    "sentry": ("sentry_metric_alert_critical.json", None),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_junk_never_causes_a_server_error(client, kind):
    ServiceFactory(slug="checkout")
    integration, key = make_integration(kind, hmac_secret="s3cret" if kind == "sentry" else "")
    name, url = CASES[kind]
    url = url or f"/api/v1/integrations/sentry/{integration.public_id}/"

    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=DERANDOMIZE,
    )
    def exercise(data):
        document = mutate(fixture_json(name), data) if data.draw(st.booleans()) else data.draw(json_values)
        if kind == "pagerduty" and isinstance(document, dict):
            document["routing_key"] = key
        body = json.dumps(document).encode()
        headers = {"authorization": f"Bearer {key}"}
        if kind == "sentry":
            headers = {
                "sentry_hook_resource": data.draw(st.sampled_from(["metric_alert", "issue", "event_alert", "x"])),
                "sentry_hook_signature": hmac.new(b"s3cret", body, hashlib.sha256).hexdigest(),
            }
        before = AlertEvent.objects.count() + ChangeEvent.objects.count()
        response = client.post(url, data=body, content_type="application/json", headers=headers)
        after = AlertEvent.objects.count() + ChangeEvent.objects.count()
        assert response.status_code < 500, response.content
        assert response["Content-Type"] == "application/json"
        if response.status_code >= 400:
            assert after == before
            assert response.json().get("message")

    exercise()


def test_deeply_nested_json_is_400(client):
    _, key = make_integration("generic")
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.post(
        "/api/v1/integrations/generic/",
        data=body,
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400


@pytest.mark.parametrize("text", ["\\ud800", "ok\\udfff", "\\u0000"])
def test_lone_surrogates_and_nul_are_400_not_a_crash(client, text):
    _, key = make_integration("generic")
    body = ('{"summary": "' + text + '", "labels": {"k": "' + text + '"}}').encode()
    response = client.post(
        "/api/v1/integrations/generic/",
        data=body,
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400, response.content
    assert AlertEvent.objects.count() == 0
