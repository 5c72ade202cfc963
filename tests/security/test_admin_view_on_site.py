"""The admin's "view on site" redirect (/admin/r/<content type>/<id>/) is no existence oracle (issue 17, finding 7):
an object hidden from you and one that does not exist get the same 404."""

import pytest
from django.contrib.contenttypes.models import ContentType

from incidents.models import Incident, TimelineEntry
from tests.factories import SecurityFactory, declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(manager):
    restricted = declare(by=SecurityFactory(), title="Breach", is_restricted=True)
    visible = declare(by=manager, title="Slow checkout")
    return {"restricted": restricted, "visible": visible}


def _url(obj_or_model, pk):
    return f"/admin/r/{ContentType.objects.get_for_model(obj_or_model).pk}/{pk}/"


def test_restricted_and_missing_incidents_get_the_same_404(client, manager, world):
    client.force_login(manager)
    hidden = client.get(_url(Incident, world["restricted"].pk))
    missing = client.get(_url(Incident, 987654321))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    shown = client.get(_url(Incident, world["visible"].pk))
    assert shown.status_code == 302 and shown["Location"].endswith(world["visible"].get_absolute_url())


def test_rows_of_a_restricted_incident_are_404_too(client, manager, world):
    client.force_login(manager)
    entry = TimelineEntry.objects.filter(incident=world["restricted"]).first()
    assert entry is not None
    assert client.get(_url(TimelineEntry, entry.pk)).status_code == 404


def test_someone_who_may_see_it_is_redirected(client, world):
    security = SecurityFactory(is_staff=True, groups=["security", "incident_manager"])
    client.force_login(security)
    assert client.get(_url(Incident, world["restricted"].pk)).status_code == 302


@pytest.mark.parametrize("path", ["/admin/r/999999/1/", "/admin/r/abc/1/", "/admin/r/1/abc/"])
def test_unknown_content_types_and_ids_are_404(client, manager, path):
    client.force_login(manager)
    assert client.get(path).status_code == 404


def test_non_staff_are_sent_to_the_admin_login(client, responder, world):
    client.force_login(responder)
    response = client.get(_url(Incident, world["visible"].pk))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
