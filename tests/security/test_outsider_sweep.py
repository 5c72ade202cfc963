"""Restricted incidents: an automated sweep over every URL pattern of the project, filled with the restricted
incident's reference and the ids of everything linked to it, as outsiders. Every answer is a 404 (or a 403,
401, 405 or a redirect for pages that never show incidents), or a page without any trace of the incident.
Non-GET methods on the incident's own URLs must change nothing (every change is in the audit trail)."""

import re
from urllib.parse import quote, quote_plus

import pytest
from django.test import Client

from incidents.audit.models import AuditRecord

from .urlsweep import GET_ONLY_ROUTES, SKIPPED_ROUTES, body_text, build_sweep

pytestmark = pytest.mark.django_db
SEARCH_PARAMS = ("q", "search", "reference", "incident", "title")


def leaks(response, world, *, url="", query="") -> list[str]:
    """Markers of the restricted incident in the body or a redirect. What the request itself carried (its
    path, e.g. in a login redirect's ?next=, and its search term, echoed in a search box) is not a leak, so it
    is removed first; a search for one marker is checked for the others (a result row has title and
    reference)."""
    incident = world["incident"]
    text = body_text(response) + "\n" + response.get("Location", "")
    path = url.split("?", 1)[0]
    for sent in {path, quote(path, safe=""), quote(path), quote_plus(path)} - {""}:
        text = text.replace(sent, "")
    found = [marker for marker in world["markers"] if marker in text and marker != query]
    reference = re.compile(rf"\b{re.escape(incident.reference)}(?!\d)")
    if query != incident.reference and reference.search(text):
        found.append(incident.reference)
    return found


def sweep_as(client, world, *, methods=("GET",)):
    incident = world["incident"]
    sweep = build_sweep(incident)
    failures = []
    requests = 0
    for target in sweep.targets:
        urls = [(target.url, "")]
        if "<" not in target.template and ":" not in target.template:
            # List pages: search for the incident by title and by reference.
            for term in (world["markers"][0], incident.reference):
                urls.append((target.url + "?" + "&".join(f"{p}={quote_plus(term)}" for p in SEARCH_PARAMS), term))
        for url, query in urls:
            for method in methods:
                if method != "GET" and (not target.incident_specific or target.template in GET_ONLY_ROUTES):
                    continue
                audit_before = AuditRecord.objects.count()
                response = getattr(client, method.lower())(url)
                requests += 1
                status = response.status_code
                problems = []
                if status >= 500:
                    problems.append(f"server error {status}")
                if method != "GET" and 200 <= status < 300:
                    problems.append(f"{method} succeeded ({status})")
                if method != "GET" and AuditRecord.objects.count() != audit_before:
                    problems.append(f"{method} changed data")
                problems += [f"shows {leak!r}" for leak in leaks(response, world, url=url, query=query)]
                if problems:
                    failures.append(f"{method} {url} [{target.template}] -> {status}: {'; '.join(problems)}")
    return sweep, failures, requests


@pytest.fixture
def outsider_client(restricted_world):
    client = Client(raise_request_exception=False)
    client.force_login(restricted_world["outsider"])
    return client


def test_every_url_hides_the_restricted_incident_from_an_outsider_responder(restricted_world, outsider_client):
    sweep, failures, requests = sweep_as(outsider_client, restricted_world, methods=("GET", "POST", "PATCH", "DELETE"))
    assert requests > 50 and any(t.incident_specific for t in sweep.targets)
    assert not failures, "\n".join(failures)


def test_every_url_hides_the_restricted_incident_from_an_outsider_staff_manager(restricted_world):
    client = Client(raise_request_exception=False)
    client.force_login(restricted_world["outsider_manager"])
    sweep, failures, _ = sweep_as(client, restricted_world, methods=("GET", "POST"))
    # The admin is swept too: a staff manager reaches it, and the incident's admin pages must not resolve.
    assert any(t.template.startswith("admin/") and t.incident_specific for t in sweep.targets)
    assert not failures, "\n".join(failures)


def test_every_url_hides_the_restricted_incident_from_anonymous_visitors(restricted_world):
    sweep, failures, _ = sweep_as(Client(raise_request_exception=False), restricted_world)
    assert not failures, "\n".join(failures)


def test_sweep_reaches_the_incident_as_an_insider(restricted_world):
    """The control: the same URLs show the incident to the security team, so the sweep fills them right."""
    client = Client(raise_request_exception=False)
    client.force_login(restricted_world["superuser"])
    sweep = build_sweep(restricted_world["incident"])
    shown = []
    for target in sweep.targets:
        if target.incident_specific and leaks(client.get(target.url), restricted_world, url=target.url):
            shown.append(target.template)
    assert "admin/incidents/incident/<path:object_id>/change/" in shown
    assert "audit/evidence/<str:reference>/" in shown
    assert len(shown) >= 5, shown


def test_sweep_skips_only_what_it_explains(restricted_world):
    sweep = build_sweep(restricted_world["incident"])
    for template, reason in sweep.skipped.items():
        explained = any(re.search(rx, template) for rx in SKIPPED_ROUTES) or reason.startswith(
            ("regex that cannot", "no filled URL")
        )
        assert explained, f"{template}: {reason}"
    # Nothing the project itself routes with <...> parameters is left out.
    unfilled = [t for t, reason in sweep.skipped.items() if not t.startswith("admin/") and "no filled URL" in reason]
    assert not unfilled, sweep.skipped
