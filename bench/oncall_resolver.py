"""On-call resolver benchmark: 200 rotations with overrides; who is on call for every rotation at every hour of a
year. Plans are loaded once (a fixed number of queries), then every answer is computed in Python.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ip_oncall .venv/bin/python bench/oncall_resolver.py

The data is created inside a transaction that is rolled back at the end, so the database is left as it was.
Prints `RESULT resolutions_per_s=... queries_per_resolution=...` as its last line.
"""

import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incidentportal.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from oncall.models import Override, Person, Rotation, RotationMember, Slot, Team  # noqa: E402
from oncall.selectors import rotation_plans  # noqa: E402

ROTATIONS = 200
MEMBERS_PER_SLOT = 4
OVERRIDES_PER_ROTATION = 26  # one every two weeks on average
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 365 * 24
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "UTC", "Asia/Kolkata"]
SHIFT_LENGTHS = [7, 7, 7, 1, 14]


class Rollback(Exception):
    pass


def create_data(rng: random.Random) -> list[int]:
    people = Person.objects.bulk_create(
        [Person(name=f"bench-person-{i}", timezone="UTC") for i in range(ROTATIONS * MEMBERS_PER_SLOT)]
    )
    teams = Team.objects.bulk_create([Team(name=f"bench-team-{i}", slug=f"bench-team-{i}") for i in range(ROTATIONS)])
    rotations = Rotation.objects.bulk_create(
        [
            Rotation(
                team=teams[i],
                name="bench",
                timezone=ZONES[i % len(ZONES)],
                shift_length_days=SHIFT_LENGTHS[i % 5],
                handoff_weekday=i % 7,
                handoff_time=clock(9, 0),
                start_date=date(2025, 6, 2),
            )
            for i in range(ROTATIONS)
        ]
    )
    members, overrides = [], []
    for i, rotation in enumerate(rotations):
        crew = people[i * MEMBERS_PER_SLOT : (i + 1) * MEMBERS_PER_SLOT]
        for offset, slot in enumerate(Slot.values):
            for position in range(MEMBERS_PER_SLOT):
                members.append(
                    RotationMember(
                        rotation=rotation,
                        slot=slot,
                        position=position,
                        person=crew[(position + offset) % MEMBERS_PER_SLOT],
                    )
                )
        for _ in range(OVERRIDES_PER_ROTATION):
            start = YEAR_START + timedelta(hours=rng.randrange(HOURS))
            overrides.append(
                Override(
                    rotation=rotation,
                    slot=rng.choice(Slot.values),
                    person=rng.choice(crew),
                    start=start,
                    end=start + timedelta(hours=rng.randrange(4, 96)),
                )
            )
    RotationMember.objects.bulk_create(members)
    Override.objects.bulk_create(overrides)
    return [rotation.pk for rotation in rotations]


def main():
    rng = random.Random(3)
    try:
        with transaction.atomic():
            ids = create_data(rng)
            hours = [YEAR_START + timedelta(hours=h) for h in range(HOURS)]
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                plans = rotation_plans(
                    Rotation.objects.filter(pk__in=ids), start=YEAR_START, end=YEAR_START + timedelta(hours=HOURS)
                )
                loaded = time.perf_counter()
                resolutions = gaps = 0
                for plan in plans:
                    resolve = plan.who_is_on_call
                    for at in hours:
                        if resolve(Slot.PRIMARY, at) is None:
                            gaps += 1
                    resolutions += len(hours)
                finished = time.perf_counter()
            all_slots_started = time.perf_counter()
            for plan in plans[:20]:
                for at in hours:
                    for slot in Slot.values:
                        plan.who_is_on_call(slot, at)
            all_slots_rate = 20 * HOURS * 3 / (time.perf_counter() - all_slots_started)
            raise Rollback
    except Rollback:
        pass
    total = finished - started
    rate = resolutions / total
    print(f"rotations={len(plans)} overrides={ROTATIONS * OVERRIDES_PER_ROTATION} hours={HOURS}")
    print(
        f"load: {len(queries)} queries in {(loaded - started) * 1000:.1f} ms; "
        f"resolve: {resolutions} answers in {finished - loaded:.2f} s ({gaps} gaps)"
    )
    print(f"resolve only: {resolutions / (finished - loaded):,.0f}/s; all three slots: {all_slots_rate:,.0f}/s")
    print(f"RESULT resolutions_per_s={rate:.0f} queries_per_resolution={len(queries) / resolutions:.7f}")


if __name__ == "__main__":
    main()
