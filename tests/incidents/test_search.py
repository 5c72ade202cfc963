"""The incident list's text search: what it finds, and on PostgreSQL that the trigram indexes of migration 0003
serve it (the list searches with icontains, which those expression indexes are built to match)."""

import pytest
from django.db import connection
from django.db.models import Q

from incidents import selectors
from incidents.models import Incident
from tests.factories import IncidentFactory, SecurityFactory

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm indexes are PostgreSQL only")


@pytest.fixture
def incidents():
    return {
        "checkout": IncidentFactory(title="Checkout API returns 502", summary="Payments fail after the deploy."),
        "login": IncidentFactory(title="Login slow", summary="SSO provider timing out for EU customers."),
        "percent": IncidentFactory(title="Disk 100% full on db-2", summary=""),
        "cafe": IncidentFactory(title="Café menu service down", summary="Kitchen display blank."),
        "secret": IncidentFactory(title="Checkout data exposed", is_restricted=True),
    }


def search(user, text: str) -> set[str]:
    rows, _ = selectors.incident_list(user=user, filters={"q": text})
    return {incident.title for incident in rows}


def found(incidents, *names) -> set[str]:
    return {incidents[name].title for name in names}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("checkout", ["checkout"]),  # title, case-insensitive; the restricted one stays hidden
        ("CHECKOUT api", ["checkout"]),
        ("kout AP", ["checkout"]),  # inside words
        ("timing out", ["login"]),  # summary only
        ("eu cust", ["login"]),
        ("100%", ["percent"]),  # LIKE wildcards are matched literally
        ("_", []),
        ("db", ["percent"]),  # shorter than a trigram still works
        ("café", ["cafe"]),
        ("no such words", []),
    ],
)
def test_search_matches_title_and_summary_text(responder, incidents, text, names):
    assert search(responder, text) == found(incidents, *names)


def test_search_by_reference_and_restricted_visibility(responder, incidents):
    assert search(responder, incidents["login"].reference) == found(incidents, "login")
    assert search(SecurityFactory(), "checkout") == found(incidents, "checkout", "secret")


@on_postgresql
def test_search_results_are_the_same_through_the_trigram_indexes(responder, incidents):
    expected = search(responder, "checkout")
    with connection.cursor() as cursor:
        # Tables of a few rows are scanned whole; make the planner take the bitmap path the indexes offer.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    assert search(responder, "checkout") == expected == found(incidents, "checkout")
    plan = Incident.objects.filter(Q(title__icontains="checkout") | Q(summary__icontains="checkout")).explain()
    assert "incident_title_trgm_idx" in plan and "incident_summary_trgm_idx" in plan
