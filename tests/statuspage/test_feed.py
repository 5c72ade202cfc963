import xml.etree.ElementTree as ET

import pytest

from tests.factories import SecurityFactory, ServiceFactory, declare

from .factories import post_update

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"


def test_atom_feed_lists_published_updates_only(client, responder):
    api = ServiceFactory(name="API")
    ServiceFactory(name="Internal batch", is_public=False)
    incident = declare(by=responder, level="P1", services=[api], title="Internal incident title")
    post_update(incident, by=responder, title="API Performance Issues", description="Slow.", affected_services=[api])
    post_update(incident, by=responder, status="monitoring", title="Fix deployed", description="Watching.")
    post_update(incident, by=responder, publish=False, title="Draft wording")
    post_update(incident, by=responder, kind="internal", what_we_know="db01 replica lag")
    security = SecurityFactory()
    breach = declare(by=security, level="P0", is_restricted=True)
    post_update(breach, by=security, title="Breach announcement")

    response = client.get("/status/feed.atom")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    assert "public" in response["Cache-Control"]
    body = response.content.decode()
    for secret in ("Draft wording", "db01", "Breach announcement", "Internal incident title", "Internal batch"):
        assert secret not in body, secret
    feed = ET.fromstring(response.content)
    entries = feed.findall(f"{ATOM}entry")
    titles = [entry.findtext(f"{ATOM}title") for entry in entries]
    assert titles == ["[Monitoring] Fix deployed", "[Investigating] API Performance Issues"]
    first_link = entries[0].find(f"{ATOM}link").get("href")
    assert first_link.endswith(f"/status/#incident-{incident.number}")
    oldest = entries[1]
    assert [c.get("term") for c in oldest.findall(f"{ATOM}category")] == ["API"]
    assert "Current status: Investigating" in oldest.findtext(f"{ATOM}summary")
    assert "Affected services:" in oldest.findtext(f"{ATOM}summary")


def test_feed_is_valid_when_empty(client):
    feed = ET.fromstring(client.get("/status/feed.atom").content)
    assert feed.findall(f"{ATOM}entry") == []
    assert feed.findtext(f"{ATOM}title") == "Status updates"


def test_feed_costs_a_fixed_number_of_queries(client, responder, django_assert_max_num_queries):
    services = [ServiceFactory() for _ in range(5)]
    for n in range(8):
        incident = declare(by=responder, level="P2", services=services[:3])
        post_update(incident, by=responder, title=f"Update {n}", affected_services=services[n % 5 :])
    with django_assert_max_num_queries(3):  # fingerprint, updates, their public services
        assert client.get("/status/feed.atom").status_code == 200


def test_feed_answers_conditional_requests(client, responder):
    incident = declare(by=responder, level="P2", services=[ServiceFactory()])
    post_update(incident, by=responder, title="First")
    first = client.get("/status/feed.atom")
    assert client.get("/status/feed.atom", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    post_update(incident, by=responder, title="Second")
    again = client.get("/status/feed.atom", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200 and "Second" in again.content.decode()
