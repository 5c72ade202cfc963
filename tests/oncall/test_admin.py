"""The admin managers use: pages render, inlines save, and bad input is a form error (never a 500)."""

from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from oncall import services as oncall_services
from oncall.models import (
    ContactMethod,
    EscalationLevel,
    EscalationPolicy,
    Hotline,
    NotificationRule,
    Override,
    Person,
    ResponseRoleDefault,
    Rotation,
    RotationMember,
    Slot,
    Team,
    Vendor,
)
from tests.factories import ManagerFactory, UserFactory

from .factories import OverrideFactory, PersonFactory, TeamFactory, guide_rotation

pytestmark = pytest.mark.django_db

MODELS = [Person, Team, Vendor, Hotline, ResponseRoleDefault, Rotation, Override, EscalationPolicy, EscalationLevel]


@pytest.fixture
def admin_client(client):
    # A manager as the issue asks: staff, incident_manager group, model permissions from the post_migrate receiver.
    client.force_login(ManagerFactory())
    return client


def url(model, action, *args):
    return reverse(f"admin:oncall_{model._meta.model_name}_{action}", args=args)


def management(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_and_add_pages_render_for_a_manager(admin_client, model):
    guide_rotation()
    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "changelist"), {"q": "a"}).status_code == 200
    assert admin_client.get(url(model, "add")).status_code == 200


def test_seeded_guide_data_is_editable(admin_client):
    for obj in [
        Hotline.objects.get(name="CTO"),
        Vendor.objects.get(name="Railway"),
        EscalationPolicy.objects.get(is_default=True),
        ResponseRoleDefault.objects.first(),
    ]:
        assert admin_client.get(url(type(obj), "change", obj.pk)).status_code == 200


def test_rotation_change_page_shows_four_weeks_of_shifts(admin_client):
    rotation, people = guide_rotation(start_date=date(2020, 1, 6))
    response = admin_client.get(url(Rotation, "change", rotation.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Next 4 weeks" in html
    assert html.count("<td>Week ") in (4, 5)
    assert people["A"].name in html and people["X"].name in html


def test_policy_change_page_shows_the_schedule_per_severity(admin_client):
    policy = EscalationPolicy.objects.get(is_default=True)
    html = admin_client.get(url(EscalationPolicy, "change", policy.pk)).content.decode()
    assert "+0 min (" in html and "On-call engineer" in html and "+75 min (" in html  # P1
    assert "+165 min" in html  # P2


def rotation_post(team, members=(), overrides=(), **fields):
    data = {
        "team": team.pk,
        "name": "Weekly",
        "description": "",
        "is_active": "on",
        "timezone": "Europe/Berlin",
        "shift_length_days": "7",
        "handoff_weekday": "0",
        "handoff_time": "09:00",
        "start_date": "2026-01-05",
    }
    data.update(fields)
    data.update(management("members", len(members)))
    for i, (slot, position, person) in enumerate(members):
        data.update(
            {f"members-{i}-slot": slot, f"members-{i}-position": str(position), f"members-{i}-person": str(person.pk)}
        )
    data.update(management("overrides", len(overrides)))
    for i, (person, start, end) in enumerate(overrides):
        data.update(
            {
                f"overrides-{i}-slot": Slot.PRIMARY,
                f"overrides-{i}-person": str(person.pk),
                f"overrides-{i}-start_0": start[0],
                f"overrides-{i}-start_1": start[1],
                f"overrides-{i}-end_0": end[0],
                f"overrides-{i}-end_1": end[1],
                f"overrides-{i}-reason": "",
            }
        )
    return data


def test_add_rotation_with_ordered_members_and_an_override(admin_client):
    a, b = PersonFactory(), PersonFactory()
    team = TeamFactory(members=[a, b])
    data = rotation_post(
        team,
        members=[(Slot.PRIMARY, 0, a), (Slot.PRIMARY, 1, b)],
        overrides=[(b, ("2026-01-07", "09:00"), ("2026-01-08", "09:00"))],
    )
    response = admin_client.post(url(Rotation, "add"), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    rotation = Rotation.objects.get()
    assert [m.person for m in RotationMember.objects.filter(rotation=rotation).order_by("position")] == [a, b]
    assert Override.objects.get().created_by is not None


def test_rotation_member_outside_the_team_is_a_form_error(admin_client):
    team = TeamFactory(members=[PersonFactory()])
    outsider = PersonFactory(name="Outsider")
    response = admin_client.post(url(Rotation, "add"), rotation_post(team, members=[(Slot.PRIMARY, 0, outsider)]))
    assert response.status_code == 200
    assert "is not a member of" in response.content.decode()
    assert not Rotation.objects.exists()


def test_duplicate_member_order_and_bad_timezone_are_form_errors(admin_client):
    a, b = PersonFactory(), PersonFactory()
    team = TeamFactory(members=[a, b])
    response = admin_client.post(
        url(Rotation, "add"),
        rotation_post(team, members=[(Slot.PRIMARY, 0, a), (Slot.PRIMARY, 0, b)], timezone="Mars/Olympus"),
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "not an IANA time zone" in html
    assert not Rotation.objects.exists()
    response = admin_client.post(
        url(Rotation, "add"), rotation_post(team, members=[(Slot.PRIMARY, 0, a), (Slot.PRIMARY, 0, b)])
    )
    assert response.status_code == 200 and "duplicate" in response.content.decode().lower()


def test_override_inline_that_ends_before_it_starts_is_a_form_error(admin_client):
    rotation, people = guide_rotation()
    data = rotation_post(
        rotation.team, name=rotation.name, overrides=[(people["A"], ("2026-01-08", "09:00"), ("2026-01-07", "09:00"))]
    )
    response = admin_client.post(url(Rotation, "change", rotation.pk), data)
    assert response.status_code == 200
    assert "must end after it starts" in response.content.decode()


def test_override_admin_rejects_a_person_outside_the_team(admin_client):
    rotation, _ = guide_rotation()
    outsider = PersonFactory()
    response = admin_client.post(
        url(Override, "add"),
        {
            "rotation": rotation.pk,
            "slot": Slot.PRIMARY,
            "person": outsider.pk,
            "start_0": "2026-01-07",
            "start_1": "09:00",
            "end_0": "2026-01-08",
            "end_1": "09:00",
            "reason": "",
        },
    )
    assert response.status_code == 200 and "is not a member of" in response.content.decode()


def test_person_with_invalid_phone_and_zone_is_a_form_error_and_valid_phone_is_normalised(admin_client):
    data = {
        "name": "Vendor Engineer",
        "email": "",
        "phone": "555-0001",
        "chat_handle": "",
        "timezone": "EST5",
        "vendor": "",
        "user": "",
        "is_active": "on",
        **management("contact_methods", 0),
        **management("notification_rules", 0),
    }
    response = admin_client.post(url(Person, "add"), data)
    html = response.content.decode()
    assert response.status_code == 200 and "E.164" in html and "IANA" in html
    data.update({"phone": "+1 (415) 555-2671", "timezone": "America/Los_Angeles", **management("contact_methods", 2)})
    data.update(
        {
            "contact_methods-0-position": "0",
            "contact_methods-0-channel": "sms",
            "contact_methods-0-is_active": "on",
            "contact_methods-1-position": "1",
            "contact_methods-1-channel": "push",
            "contact_methods-1-address": "nosuchservice://token",
            "contact_methods-1-is_active": "on",
        }
    )
    response = admin_client.post(url(Person, "add"), data)
    assert response.status_code == 200 and "Apprise cannot use this URL" in response.content.decode()
    assert not Person.objects.filter(name="Vendor Engineer").exists()
    data.update({"contact_methods-1-channel": "email", "contact_methods-1-address": "oncall@vendor.example"})
    assert admin_client.post(url(Person, "add"), data).status_code == 302
    person = Person.objects.get(name="Vendor Engineer")
    assert person.phone == "+14155552671"
    assert [m.channel for m in person.contact_methods_in_order()] == [ContactMethod.Channel.SMS, "email", "voice"]
    # Saved without rules: the defaults are seeded (SMS and email at once, a call 3 minutes after the page).
    assert [(r.contact_method.channel, r.delay_minutes) for r in person.notification_rules.all()] == [
        ("sms", 0),
        ("email", 0),
        ("voice", 3),
    ]


def test_escalation_target_without_its_hotline_is_a_form_error(admin_client):
    level = EscalationLevel.objects.filter(policy__is_default=True).order_by("position").last()
    target = level.targets.get()
    data = {
        "policy": level.policy_id,
        "position": level.position,
        "name": level.name,
        "delay": "1:00:00",
        **management("targets", 1, 1),
        "targets-0-id": target.pk,
        "targets-0-level": level.pk,
        "targets-0-kind": "hotline",
        "targets-0-hotline": "",
        "targets-0-team": "",
        "targets-0-slot": "",
        "targets-0-person": "",
    }
    response = admin_client.post(url(EscalationLevel, "change", level.pk), data)
    assert response.status_code == 200 and "Choose the hotline to page" in response.content.decode()


def test_hotline_needs_a_person_or_a_number(admin_client):
    response = admin_client.post(
        url(Hotline, "add"),
        {"name": "VP Eng", "kind": "escalation_hotline", "description": "", "phone": "", "email": "", "position": 0},
    )
    assert response.status_code == 200 and "needs a person or a phone number" in response.content.decode()


def test_rotate_calendar_links_action(admin_client):
    person = PersonFactory()
    response = admin_client.post(
        url(Person, "changelist"), {"action": "rotate_calendar_links", "_selected_action": [person.pk]}
    )
    assert response.status_code == 302
    assert person.calendar_feed.token


def test_overrides_show_on_the_rotation_inline(admin_client):
    rotation, people = guide_rotation()
    OverrideFactory(
        rotation=rotation, person=people["B"], start="2026-02-01T00:00Z", end="2026-02-02T00:00Z", reason="swap"
    )
    assert "swap" in admin_client.get(url(Rotation, "change", rotation.pk)).content.decode()


def test_second_default_policy_and_zero_shift_length_are_form_errors(admin_client):
    response = admin_client.post(
        url(EscalationPolicy, "add"),
        {"name": "Another", "description": "", "team": "", "is_default": "on", **management("levels", 0)},
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert EscalationPolicy.objects.count() == 1
    team = TeamFactory()
    response = admin_client.post(url(Rotation, "add"), rotation_post(team, shift_length_days="0"))
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not Rotation.objects.exists()


def test_member_rows_without_a_position_keep_their_entered_order(admin_client):
    a, b, c = PersonFactory(), PersonFactory(), PersonFactory()
    team = TeamFactory(members=[a, b, c])
    data = rotation_post(team, members=[(Slot.PRIMARY, "", c), (Slot.PRIMARY, "", a), (Slot.SECONDARY, "", b)])
    assert admin_client.post(url(Rotation, "add"), data).status_code == 302
    rotation = Rotation.objects.get()
    primary = [
        m.person for m in RotationMember.objects.filter(rotation=rotation, slot=Slot.PRIMARY).order_by("position")
    ]
    assert primary == [c, a]


def _override_post(rotation, person, start, end, reason=""):
    return {
        "rotation": rotation.pk,
        "slot": Slot.PRIMARY,
        "person": person.pk,
        "start_0": start.strftime("%Y-%m-%d"),
        "start_1": start.strftime("%H:%M"),
        "end_0": end.strftime("%Y-%m-%d"),
        "end_1": end.strftime("%H:%M"),
        "reason": reason,
    }


def test_override_admin_applies_create_override_rules_to_staff_who_are_not_managers(client):
    """A responder with admin access to overrides covers only for themselves, as on the portal's pages."""
    rotation, people = guide_rotation()
    staff = UserFactory(groups=["responder"], is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_override", "change_override", "view_override"])
    )
    people["A"].user = staff
    people["A"].save()
    client.force_login(staff)
    start = timezone.now().replace(microsecond=0, second=0) + timedelta(days=1)
    response = client.post(
        url(Override, "add"), _override_post(rotation, people["B"], start, start + timedelta(hours=8))
    )
    assert response.status_code == 200 and "only for themselves" in response.content.decode()
    assert not Override.objects.exists()
    response = client.post(
        url(Override, "add"), _override_post(rotation, people["A"], start, start + timedelta(hours=8))
    )
    assert response.status_code == 302
    override = Override.objects.get()
    assert override.person == people["A"] and override.created_by == staff


def test_override_admin_change_keeps_precedence_and_delete_goes_through_cancel(admin_client):
    rotation, people = guide_rotation()
    start = timezone.now().replace(microsecond=0, second=0) + timedelta(days=1)
    override = OverrideFactory(rotation=rotation, person=people["A"], start=start, end=start + timedelta(hours=4))
    created_at = override.created_at
    data = _override_post(rotation, people["B"], start, start + timedelta(hours=6), reason="Swap")
    response = admin_client.post(url(Override, "change", override.pk), data)
    assert response.status_code == 302
    override.refresh_from_db()
    assert (override.person, override.reason, override.created_at) == (people["B"], "Swap", created_at)
    # A window PostgreSQL cannot read back is refused by the service's rule, as a form error.
    data["end_0"] = "9999-12-31"
    response = admin_client.post(url(Override, "change", override.pk), data)
    assert response.status_code == 200 and "between the years 1900 and 9998" in response.content.decode()
    response = admin_client.post(url(Override, "delete", override.pk), {"post": "yes"})
    assert response.status_code == 302 and not Override.objects.exists()


def test_a_manager_changes_someones_notification_rule_in_the_admin(admin_client):
    person = PersonFactory(name="Rita Responder", email="rita@example.com", phone="+14155552671")
    oncall_services.seed_default_notification_rules(person=person)
    methods = list(person.contact_methods_in_order())
    rules = list(person.notification_rules.order_by("pk"))
    data = {
        "name": person.name,
        "email": person.email,
        "phone": person.phone,
        "chat_handle": "",
        "timezone": person.timezone,
        "vendor": "",
        "user": "",
        "is_active": "on",
        **management("contact_methods", len(methods), len(methods)),
        **management("notification_rules", len(rules), len(rules)),
    }
    for i, method in enumerate(methods):
        data.update(
            {
                f"contact_methods-{i}-id": str(method.pk),
                f"contact_methods-{i}-person": str(person.pk),
                f"contact_methods-{i}-position": str(method.position),
                f"contact_methods-{i}-channel": method.channel,
                f"contact_methods-{i}-address": method.address,
                f"contact_methods-{i}-is_active": "on",
            }
        )
    for i, rule in enumerate(rules):
        delay = 10 if rule.contact_method.channel == "voice" else rule.delay_minutes
        data.update(
            {
                f"notification_rules-{i}-id": str(rule.pk),
                f"notification_rules-{i}-person": str(person.pk),
                f"notification_rules-{i}-delay_minutes": str(delay),
                f"notification_rules-{i}-contact_method": str(rule.contact_method_id),
            }
        )
    response = admin_client.post(url(Person, "change", person.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    voice = NotificationRule.objects.get(person=person, contact_method__channel="voice")
    assert voice.delay_minutes == 10
