"""seed_oncall_demo: idempotent, linked to the demo users and services when they exist."""

from io import StringIO

import pytest
from django.core.management import call_command

from incidents.models import Service
from oncall.models import EscalationPolicy, Hotline, Override, Person, Rotation, RotationMember, Slot, Team
from tests.factories import ServiceFactory, UserFactory

pytestmark = pytest.mark.django_db


def counts():
    return [m.objects.count() for m in (Person, Team, Rotation, RotationMember, Override, EscalationPolicy)]


def test_seed_oncall_demo_is_idempotent_and_links_demo_users_and_services():
    jane = UserFactory(username="responder", first_name="Jane", last_name="Smith")
    ServiceFactory(slug="backend-api", name="Backend API")
    ServiceFactory(slug="web-app", name="Web App")
    call_command("seed_oncall_demo", stdout=StringIO())
    first = counts()
    call_command("seed_oncall_demo", stdout=StringIO())
    assert counts() == first
    assert Person.objects.get(user=jane).name == "Jane Smith"
    assert Person.objects.filter(name="Dana Kim", user__isnull=True).exists()  # contacts need not be users
    assert Service.objects.get(slug="backend-api").owning_team.name == "Platform"
    assert Service.objects.get(slug="web-app").owning_team.name == "Web"
    rotation = Rotation.objects.get(name="Platform weekly")
    primary = [m.person.name for m in rotation.members.filter(slot=Slot.PRIMARY).order_by("position")]
    secondary = [m.person.name for m in rotation.members.filter(slot=Slot.SECONDARY).order_by("position")]
    assert primary == ["Jane Smith", "Sam Lee", "Priya Patel"]  # Engineer A, B, C
    assert secondary == ["Sam Lee", "Priya Patel", "Jane Smith"]  # B, C, A
    assert Override.objects.filter(rotation=rotation).count() == 1
    assert EscalationPolicy.objects.get(is_default=True).levels.count() == 4


def test_every_hotline_gets_an_email_so_the_default_run_reaches_it(settings):
    """`make run` has console email and SMS/voice only logged: the demo gives every hotline an email, so the final
    hotline alert reaches each one somewhere a person reads."""
    call_command("seed_oncall_demo", stdout=StringIO())
    hotlines = list(Hotline.objects.all())
    assert hotlines and all(hotline.email for hotline in hotlines)
    assert {"Engineering Manager", "CTO"} <= {hotline.name for hotline in hotlines}
