"""factory_boy factories shared by every app's tests. Apps with many models add tests/<app>/factories.py."""

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from incidentportal.celery import beat_ticks
from incidents import numbering
from incidents.models import Incident, Service, SeverityPolicy
from incidents.services.status import declare_incident
from oncall.health import heartbeats


def severity(level: str) -> SeverityPolicy:
    return SeverityPolicy.objects.get(level=level)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        # UserFactory(groups=["responder"]); the factories below give a default list.
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))


def _user_factory_with(name: str, groups: list[str], **fields):
    def _groups(obj, create, extracted, **kwargs):
        for group in extracted if extracted is not None else groups:
            obj.groups.add(Group.objects.get(name=group))

    attrs = {"groups": factory.PostGeneration(_groups), **fields}
    return type(name, (UserFactory,), attrs)


ViewerFactory = _user_factory_with("ViewerFactory", ["viewer"])
ResponderFactory = _user_factory_with("ResponderFactory", ["responder"])
ManagerFactory = _user_factory_with("ManagerFactory", ["incident_manager"], is_staff=True)
SecurityFactory = _user_factory_with("SecurityFactory", ["security", "responder"])


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Service {n}")
    slug = factory.Sequence(lambda n: f"service-{n}")
    description = "A service in the catalogue."


class IncidentFactory(factory.django.DjangoModelFactory):
    """A bare incident row (no checklists, roles or timeline). Use declare() for a fully declared one."""

    class Meta:
        model = Incident

    number = factory.LazyFunction(numbering.next_number)  # never a number a declaration takes later
    title = factory.Sequence(lambda n: f"Incident {n}")
    severity = factory.LazyFunction(lambda: severity("P2"))
    detected_at = factory.LazyFunction(timezone.now)
    declared_at = factory.LazyFunction(timezone.now)


def declare(*, by=None, level="P1", title="API slow response times", **kwargs) -> Incident:
    """Declare an incident the way the portal does (numbering, checklists, Incident Commander)."""
    by = by if by is not None else ResponderFactory()
    return declare_incident(title=title, severity=severity(level), by=by, **kwargs)


def timers_running(settings) -> None:
    """Every beat tick has just run (heartbeats, as a worker writes them), and stays fresh however long the test
    takes: /healthz answers 200 in tests that walk every URL, as it does on a running portal."""
    settings.HEALTH_STALE_TICKS = 10**9
    settings.HEALTH_OUTBOX_MAX_AGE_SECONDS = 10**9
    heartbeats.record([name for name, _task, _seconds in beat_ticks()])
