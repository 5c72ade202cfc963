"""Paging fixtures: a team owning a service, a weekly rotation, people with ordered contact methods."""

from dataclasses import dataclass
from datetime import date

from oncall.models import ContactMethod, NotificationRule, Person, Slot, Team
from tests.factories import ServiceFactory
from tests.oncall.factories import PersonFactory, RotationFactory, TeamFactory, add_members


def with_methods(person: Person, *channels, delays=None, addresses=None) -> Person:
    """Contact methods with one notification rule each: with_methods(p, "email", "sms", delays={"sms": 2})."""
    delays = delays or {}
    addresses = addresses or {}
    for position, channel in enumerate(channels):
        method = ContactMethod.objects.create(
            person=person, position=position, channel=channel, address=addresses.get(channel, "")
        )
        NotificationRule.objects.create(person=person, contact_method=method, delay_minutes=delays.get(channel, 0))
    return person


@dataclass
class Setup:
    team: Team
    oncall: Person
    lead: Person
    service: object


def paged_team(*, name="Platform", oncall_channels=("email", "sms"), lead_channels=("email",)) -> Setup:
    """A team whose rotation puts one engineer on primary all year, with a team lead, owning a service."""
    team = TeamFactory(name=name, slug=name.lower().replace(" ", "-"))
    engineer = with_methods(PersonFactory(name=f"{name} Engineer"), *oncall_channels)
    lead = with_methods(PersonFactory(name=f"{name} Lead"), *lead_channels)
    team.team_lead = lead
    team.save()
    rotation = RotationFactory(team=team, start_date=date(2020, 1, 6))
    add_members(rotation, Slot.PRIMARY, [engineer])
    service = ServiceFactory(name=f"{name} API", slug=f"{name.lower()}-api", owning_team=team)
    return Setup(team=team, oncall=engineer, lead=lead, service=service)
