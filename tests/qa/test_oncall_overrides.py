"""QA regressions on the override form and API: impossible times are form/field errors, never stored or a 500."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from oncall.models import Override, Slot
from tests.factories import ManagerFactory
from tests.oncall.factories import guide_rotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def ny_rotation():
    with time_machine.travel(datetime(2026, 1, 14, 12, tzinfo=UTC), tick=False):
        yield guide_rotation(timezone="America/New_York")


def _post(client, rotation, person, start, end):
    return client.post(
        reverse("oncall:override_create"),
        {"rotation": rotation.pk, "slot": Slot.PRIMARY, "person": person.pk, "start": start, "end": end},
    )


def test_override_ending_in_year_10000_utc_is_a_form_error_and_overrides_stay_readable(client, ny_rotation):
    rotation, p = ny_rotation
    client.force_login(ManagerFactory())
    # 23:00 on 9999-12-31 in New York is 04:00 on 10000-01-01 UTC: psycopg cannot read that back.
    response = _post(client, rotation, p["A"], "9999-12-31T23:00", "9999-12-31T23:59")
    assert response.status_code == 400
    assert "between the years 1900 and 9998" in response.context["form"].errors["start"][0]
    assert not Override.objects.exists()
    assert client.get(reverse("oncall-override-list")).status_code == 200


def test_override_in_year_one_is_a_form_error(client, ny_rotation):
    rotation, p = ny_rotation
    client.force_login(ManagerFactory())
    response = _post(client, rotation, p["A"], "0001-01-01T00:00", "0001-01-01T05:00")
    assert response.status_code == 400
    assert "between the years 1900 and 9998" in str(response.context["form"].errors)
    assert not Override.objects.exists()


def test_override_starting_in_the_spring_forward_gap_names_the_missing_time(client, ny_rotation):
    rotation, p = ny_rotation
    client.force_login(ManagerFactory())
    # 02:30 on 2026-03-08 never happens in New York (clocks jump from 02:00 to 03:00).
    response = _post(client, rotation, p["A"], "2026-03-08T02:30", "2026-03-08T03:30")
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "does not exist in America/New_York" in errors["start"][0]
    assert "Constraint" not in str(errors)
    assert not Override.objects.exists()


def test_api_override_past_year_9998_is_a_400_naming_the_field(client, ny_rotation):
    rotation, p = ny_rotation
    client.force_login(ManagerFactory())
    response = client.post(
        reverse("oncall-override-list"),
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": p["A"].pk,
            "start": "9999-12-31T22:00:00-05:00",
            "end": "9999-12-31T23:30:00-05:00",
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == "start"
    assert not Override.objects.exists()
    assert client.get(reverse("oncall-override-list")).status_code == 200


@pytest.mark.parametrize("start", ["9999-12-20", "0001-01-01", "9999-99-99"])
def test_rotation_calendar_with_an_out_of_range_start_falls_back_instead_of_a_500(client, ny_rotation, start):
    rotation, _ = ny_rotation
    client.force_login(ManagerFactory())
    response = client.get(reverse("oncall:rotation", args=[rotation.pk]), {"start": start, "weeks": "12"})
    assert response.status_code == 200
    assert response.context["first_day"].year == 2026


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_api_on_call_at_the_edge_of_the_calendar_is_a_400_naming_at(client, ny_rotation, at):
    client.force_login(ManagerFactory())
    response = client.get(reverse("oncall-now-list"), {"at": at})
    assert response.status_code == 400
    assert response.json()["field"] == "at"
