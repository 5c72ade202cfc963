"""The rotation calendar shows whole shifts: a shift that started before the window (Monday 09:00 handoff, window
from Tuesday) keeps its real start, and the last one its real end."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.urls import reverse

from oncall import selectors
from tests.factories import ViewerFactory

from .factories import guide_rotation

pytestmark = pytest.mark.django_db


@time_machine.travel(datetime(2026, 1, 14, 12, 0, tzinfo=UTC), tick=False)
def test_calendar_does_not_clip_shifts_at_its_window_edges(client):
    rotation, _ = guide_rotation(start_date=date(2026, 1, 5), name="Platform weekly")
    start = datetime(2026, 1, 13, tzinfo=UTC)  # a Tuesday, inside the week handed off on Monday 12th 09:00
    plan, shifts = selectors.rotation_calendar(rotation, start=start, weeks=1)
    rows = selectors.calendar_rows(plan, shifts)
    assert rows[0].start == datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    assert rows[-1].end == datetime(2026, 1, 26, 9, 0, tzinfo=UTC)
    assert all(shift.start.hour == 9 and shift.end.hour == 9 for shift in shifts)

    client.force_login(ViewerFactory())
    html = client.get(reverse("oncall:rotation", args=[rotation.pk]), {"start": "2026-01-13", "weeks": 1}).content
    assert "Mon 12 Jan 2026, 09:00 UTC" in html.decode() and "Tue 13 Jan 2026, 00:00" not in html.decode()
