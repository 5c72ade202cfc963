"""Demo on-call data: people (linked to the seed_demo users when they exist), two teams owning the demo services,
weekly rotations like the guide's Week 1/2/3 table, an override, and the guide's escalation policy.

Idempotent: run it as often as you like; rows are matched by name and updated, never duplicated.
"""

from __future__ import annotations

import importlib
from datetime import datetime, time, timedelta

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from incidents.models import Service
from oncall import services
from oncall.models import (
    ContactMethod,
    EscalationPolicy,
    Hotline,
    Override,
    Person,
    Rotation,
    RotationMember,
    Slot,
    Team,
)

# (key, name, demo username or None, phone, timezone)
PEOPLE = [
    ("jane", "Jane Smith", "responder", "+14155550101", "America/New_York"),
    ("sam", "Sam Lee", "scribe", "+14155550102", "America/New_York"),
    ("priya", "Priya Patel", "comms", "+442071838750", "Europe/London"),
    ("john", "John Doe", "ic", "+14155550104", "America/New_York"),
    ("maria", "Maria Garcia", "manager", "+14155550105", "America/New_York"),
    ("sofia", "Sofia Security", "security", "+493012345678", "Europe/Berlin"),
    ("dana", "Dana Kim", None, "+61291234567", "Australia/Sydney"),
    ("omar", "Omar Haddad", None, "+493098765432", "Europe/Berlin"),
]

# team name, slug, lead, members, owned service slugs (from seed_demo)
TEAMS = [
    (
        "Platform",
        "platform",
        "maria",
        ["jane", "sam", "priya", "john", "maria"],
        ["backend-api", "database", "background-jobs", "authentication", "payments"],
    ),
    ("Web", "web", "dana", ["dana", "omar", "sofia", "john", "maria"], ["web-app", "cdn", "email"]),
]

# The guide's table: Primary A, B, C; Secondary B, C, A; IC Manager X, Y (X again in Week 3).
ROTATIONS = [
    (
        "Platform",
        "Platform weekly",
        "America/New_York",
        {
            Slot.PRIMARY: ["jane", "sam", "priya"],
            Slot.SECONDARY: ["sam", "priya", "jane"],
            Slot.INCIDENT_COMMANDER: ["john", "maria"],
        },
    ),
    (
        "Web",
        "Web weekly",
        "Europe/Berlin",
        {
            Slot.PRIMARY: ["dana", "omar", "sofia"],
            Slot.SECONDARY: ["omar", "sofia", "dana"],
            Slot.INCIDENT_COMMANDER: ["maria", "john"],
        },
    ),
]

OVERRIDE_REASON = "Demo: shift swap (Sam covers primary for two days)"


class Command(BaseCommand):
    help = "Seed demo on-call data (people, teams, rotations, an override, the guide's escalation policy)."

    @transaction.atomic
    def handle(self, *args, **options):
        people = self.seed_people()
        teams = self.seed_teams(people)
        rotations = self.seed_rotations(teams, people)
        self.seed_override(rotations["Platform weekly"], people["sam"])
        self.seed_policy(people)
        self.stdout.write(
            self.style.SUCCESS(
                f"On-call demo: {len(people)} people, {len(teams)} teams, {len(rotations)} rotations, "
                f"{EscalationPolicy.objects.count()} escalation policies. See /oncall/."
            )
        )

    def seed_people(self) -> dict[str, Person]:
        users = {u.username: u for u in get_user_model().objects.filter(username__in=[p[2] for p in PEOPLE if p[2]])}
        people = {}
        for key, name, username, phone, zone in PEOPLE:
            user = users.get(username)
            email = user.email if user and user.email else f"{key}@example.com"
            person = Person.objects.filter(user=user).first() if user else None
            person = person or Person.objects.filter(name=name).first() or Person(name=name)
            person.name, person.user, person.email, person.phone, person.timezone = name, user, email, phone, zone
            person.chat_handle = f"@{key}"
            person.full_clean()
            person.save()
            for position, channel in enumerate([ContactMethod.Channel.SMS, ContactMethod.Channel.EMAIL]):
                ContactMethod.objects.update_or_create(person=person, position=position, defaults={"channel": channel})
            # SMS and email at once, a call after 3 minutes (kept as edited when the person has rules already).
            services.seed_default_notification_rules(person=person)
            people[key] = person
        return people

    def seed_teams(self, people) -> dict[str, Team]:
        teams = {}
        for name, slug, lead, members, service_slugs in TEAMS:
            team, _ = Team.objects.update_or_create(slug=slug, defaults={"name": name, "team_lead": people[lead]})
            team.members.add(*[people[key] for key in members])
            owned = Service.objects.filter(slug__in=service_slugs).update(owning_team=team)
            if owned < len(service_slugs):
                self.stdout.write(f"  {name}: {owned}/{len(service_slugs)} demo services found (run seed_demo first).")
            teams[name] = team
        return teams

    def seed_rotations(self, teams, people) -> dict[str, Rotation]:
        # Started two weeks ago on a Monday, so the demo shows Week 3 of the guide's table now.
        today = timezone.now().date()
        monday = today - timedelta(days=today.weekday()) - timedelta(weeks=2)
        rotations = {}
        for team_name, name, zone, slots in ROTATIONS:
            rotation, _ = Rotation.objects.update_or_create(
                team=teams[team_name],
                name=name,
                defaults={
                    "timezone": zone,
                    "shift_length_days": 7,
                    "handoff_weekday": 0,
                    "handoff_time": time(9, 0),
                    "is_active": True,
                },
                create_defaults={
                    "timezone": zone,
                    "shift_length_days": 7,
                    "handoff_weekday": 0,
                    "handoff_time": time(9, 0),
                    "is_active": True,
                    "start_date": monday,
                },
            )
            for slot, keys in slots.items():
                RotationMember.objects.filter(rotation=rotation, slot=slot, position__gte=len(keys)).delete()
                for position, key in enumerate(keys):
                    RotationMember.objects.update_or_create(
                        rotation=rotation, slot=slot, position=position, defaults={"person": people[key]}
                    )
            rotations[name] = rotation
        return rotations

    def seed_override(self, rotation: Rotation, person: Person) -> None:
        if Override.objects.filter(rotation=rotation, reason=OVERRIDE_REASON).exists():
            return
        local_today = timezone.now().astimezone(rotation.zone).date()
        start = datetime.combine(local_today + timedelta(days=2), time(9, 0), tzinfo=rotation.zone)
        override = Override(
            rotation=rotation,
            slot=Slot.PRIMARY,
            person=person,
            start=start,
            end=start + timedelta(days=2),
            reason=OVERRIDE_REASON,
        )
        override.full_clean()
        override.save()

    def seed_policy(self, people) -> None:
        # The guide's escalation path and contacts, restored if they were deleted (edits are kept).
        migration = importlib.import_module("oncall.migrations.0003_seed_guide_contacts_escalation")
        if not EscalationPolicy.objects.filter(name=migration.GUIDE_POLICY).exists():
            if EscalationPolicy.objects.filter(is_default=True).exists():
                EscalationPolicy.objects.filter(is_default=True).update(is_default=False)
            migration.seed(apps, None)
        Hotline.objects.filter(name="Engineering Manager", person__isnull=True).update(person=people["maria"])
        # Every hotline gets an email, so the default `make run` (console email, SMS and calls only logged) reaches
        # each one somewhere a person can read it.
        for hotline in Hotline.objects.filter(email=""):
            slug = "".join(ch if ch.isalnum() else "-" for ch in hotline.name.lower()).strip("-")
            hotline.email = f"{slug}@example.com"
            hotline.save(update_fields=["email"])
