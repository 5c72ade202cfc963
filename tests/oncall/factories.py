"""Factories for the on-call area."""

from datetime import date, time

import factory
from django.utils import timezone

from oncall.models import Override, Person, Rotation, RotationMember, Slot, Team


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    name = factory.Sequence(lambda n: f"Engineer {n}")
    email = factory.LazyAttribute(lambda p: f"{p.name.lower().replace(' ', '.')}@example.com")
    phone = "+14155552671"
    timezone = "UTC"


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        for person in extracted or ():
            self.members.add(person)


class RotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rotation

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"Rotation {n}")
    timezone = "UTC"
    shift_length_days = 7
    handoff_weekday = 0
    handoff_time = time(9, 0)
    start_date = date(2026, 1, 5)


def add_members(rotation: Rotation, slot: str, people) -> list[RotationMember]:
    """Ordered members of a slot; people are added to the rotation's team as well."""
    rotation.team.members.add(*people)
    return [
        RotationMember.objects.create(rotation=rotation, slot=slot, position=i, person=person)
        for i, person in enumerate(people)
    ]


def guide_rotation(**fields) -> tuple[Rotation, dict[str, Person]]:
    """The guide's table: Primary A, B, C; Secondary B, C, A; IC Manager X, Y, X."""
    rotation = RotationFactory(**fields)
    people = {
        key: PersonFactory(name=f"{label} {key}")
        for key, label in [("A", "Engineer"), ("B", "Engineer"), ("C", "Engineer"), ("X", "Manager"), ("Y", "Manager")]
    }
    add_members(rotation, Slot.PRIMARY, [people["A"], people["B"], people["C"]])
    add_members(rotation, Slot.SECONDARY, [people["B"], people["C"], people["A"]])
    add_members(rotation, Slot.INCIDENT_COMMANDER, [people["X"], people["Y"]])
    return rotation, people


class OverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Override

    rotation = factory.SubFactory(RotationFactory)
    slot = Slot.PRIMARY
    person = factory.SubFactory(PersonFactory)
    created_at = factory.LazyFunction(timezone.now)
