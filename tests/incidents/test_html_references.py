"""Markup that checkers (the W3C Nu HTML checker, axe-core) reject, checked on the pages where it appeared:
aria-describedby pointing at ids that do not exist, and <time datetime> values with more than three fraction
digits."""

import re

import pytest

from incidents.models import Status
from incidents.services.entries import add_timeline_entry
from incidents.services.status import change_status
from tests.factories import ServiceFactory, declare

pytestmark = pytest.mark.django_db

TIME_VALUE = re.compile(r"^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,3})?)?(Z|[+-]\d\d:\d\d)?)?$")


def dangling_descriptions(html: str) -> list[str]:
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    return [
        target
        for value in re.findall(r'aria-describedby="([^"]*)"', html)
        for target in value.split()
        if target not in ids
    ]


def bad_time_values(html: str) -> list[str]:
    return [value for value in re.findall(r'<time[^>]*\sdatetime="([^"]*)"', html) if not TIME_VALUE.match(value)]


def test_declare_form_describes_fields_with_elements_that_exist(client, responder):
    client.force_login(responder)
    html = client.get("/incidents/declare/").content.decode()
    assert "aria-describedby" in html
    assert dangling_descriptions(html) == []
    # Also with errors shown.
    html = client.post("/incidents/declare/", {"title": ""}).content.decode()
    assert dangling_descriptions(html) == []


def test_pages_have_valid_time_values_and_descriptions(client, responder):
    api = ServiceFactory(name="API")
    incident = declare(by=responder, level="P1", services=[api])
    add_timeline_entry(incident=incident, by=responder, body="Restarted the workers")
    resolved = declare(by=responder, level="P2", services=[api])
    change_status(incident=resolved, to=Status.RESOLVED, by=responder)
    client.force_login(responder)
    for path in ["/", "/incidents/", incident.get_absolute_url(), resolved.get_absolute_url(), "/status/"]:
        html = client.get(path).content.decode()
        assert "<time" in html or path == "/", path
        assert bad_time_values(html) == [], path
        assert dangling_descriptions(html) == [], path
