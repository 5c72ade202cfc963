"""State changes of the on-call area. Views, admin actions and the API call these; none re-implements a rule.

Every function runs in one transaction and locks the row it changes. The audit trail (incidents.audit) records
each saved or deleted on-call row from its signal receivers inside that same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents import access
from incidents.errors import DomainError, PermissionDenied

from .models import CalendarFeed, ContactMethod, NotificationRule, Override, Person, Rotation, new_calendar_token


def person_for(user) -> Person | None:
    """The directory entry linked to a portal user, if any."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Person.objects.filter(user=user).first()


def can_override_for(user, person: Person) -> bool:
    """Managers may create overrides for anyone; responders only for themselves."""
    if access.is_manager(user):
        return True
    return access.can_respond(user) and person.user_id is not None and person.user_id == user.pk


def _domain_error(error: ValidationError) -> DomainError:
    if hasattr(error, "error_dict"):
        field, messages = next(iter(error.message_dict.items()))
        return DomainError(" ".join(messages), field=None if field == "__all__" else field)
    return DomainError(" ".join(error.messages))


@transaction.atomic
def create_override(
    *, rotation: Rotation, slot: str, person: Person, start: datetime, end: datetime, reason: str = "", by
) -> Override:
    """A person covers `slot` of `rotation` from `start` to `end` (shift swap, vacation).

    Keeps: the window ends after it starts; the person is a member of the rotation's team; responders cover only
    for themselves, managers for anyone. The rotation row is locked so concurrent overrides are ordered by
    creation time, which decides precedence where they overlap (the latest wins).
    """
    check_override(by=by, person=person, start=start, end=end)
    rotation = Rotation.objects.select_for_update().select_related("team").get(pk=rotation.pk)
    override = Override(
        rotation=rotation,
        slot=slot,
        person=person,
        start=start,
        end=end,
        reason=reason,
        created_by=by,
        created_at=timezone.now(),
    )
    try:
        override.full_clean()
    except ValidationError as error:
        raise _domain_error(error) from error
    override.save()
    return override


def check_override(*, by, person: Person, start: datetime, end: datetime) -> None:
    """The rules of create_override and change_override that need no lock (who may cover, a storable window);
    the admin form asks them while validating. Raises DomainError, writes nothing."""
    if not can_override_for(by, person):
        raise PermissionDenied("Responders can create overrides only for themselves; ask a manager.", field="person")
    _check_override_window(start, end)


@transaction.atomic
def change_override(
    *, override: Override, by, slot: str, person: Person, start: datetime, end: datetime, reason: str = ""
) -> Override:
    """Edit an override under the rules of create_override: whoever may cancel it (a manager, or the person
    covering) may change it, and only to cover someone they may cover for. The override row is locked; it keeps
    its creation time, so its precedence among overlapping overrides stays."""
    override = Override.objects.select_for_update().select_related("person").get(pk=override.pk)
    if not can_override_for(by, override.person):
        raise PermissionDenied("Only a manager or the person covering can change this override.")
    check_override(by=by, person=person, start=start, end=end)
    override.slot, override.person, override.start, override.end, override.reason = slot, person, start, end, reason
    try:
        override.full_clean()
    except ValidationError as error:
        raise _domain_error(error) from error
    override.save(update_fields=["slot", "person", "start", "end", "reason"])
    return override


def _check_override_window(start: datetime, end: datetime) -> None:
    """Reject windows PostgreSQL cannot store or read back.

    A wall-clock time near 9999-12-31 in a zone west of UTC is year 10000 in UTC: PostgreSQL stores it, but psycopg
    cannot load it, so every later read of overrides would fail. Years outside 1900..9998 are never a real shift.
    """
    for name, value in (("start", start), ("end", end)):
        try:
            year = value.astimezone(UTC).year
        except (OverflowError, ValueError):
            year = None
        if year is None or not 1900 <= year <= 9998:
            raise DomainError("Give a date between the years 1900 and 9998.", field=name)
    if end <= start:
        raise DomainError("The override must end after it starts.", field="end")


@transaction.atomic
def cancel_override(*, override: Override, by) -> None:
    """Remove an override; the person who covers (as a responder) or a manager may do it."""
    override = Override.objects.select_for_update().select_related("person").get(pk=override.pk)
    if not can_override_for(by, override.person):
        raise PermissionDenied("Only a manager or the person covering can cancel this override.")
    override.delete()


@transaction.atomic
def calendar_feed_for(person: Person) -> CalendarFeed:
    """The person's calendar feed, created with a fresh secret token the first time it is asked for."""
    feed, _ = CalendarFeed.objects.select_for_update().get_or_create(person=person)
    return feed


@transaction.atomic
def rotate_calendar_token(*, person: Person, by) -> CalendarFeed:
    """Replace the secret in the person's feed URLs; every URL handed out before stops working at once.

    The person themself or a manager may do it.
    """
    if not (access.is_manager(by) or (person.user_id is not None and person.user_id == getattr(by, "pk", None))):
        raise PermissionDenied("Only the person or a manager can rotate this calendar link.")
    feed, created = CalendarFeed.objects.select_for_update().get_or_create(person=person)
    if not created:
        feed.token = new_calendar_token()
        feed.rotated_at = timezone.now()
        feed.save(update_fields=["token", "rotated_at"])
    return feed


# --- contact methods and notification rules ------------------------------------------------------------------

# Seeded for every person: SMS and email at once, a phone call 3 minutes after the page (what the directory entry
# allows: no phone, no SMS or call rule).
DEFAULT_RULES = (
    (ContactMethod.Channel.SMS, 0),
    (ContactMethod.Channel.EMAIL, 0),
    (ContactMethod.Channel.VOICE, 3),
)


def can_edit_rules(user, person: Person) -> bool:
    """Managers edit anyone's rules; a person edits their own."""
    if access.is_manager(user):
        return True
    return person.user_id is not None and getattr(user, "pk", None) == person.user_id


@transaction.atomic
def seed_default_notification_rules(*, person: Person) -> list[NotificationRule]:
    """Give a person without notification rules the defaults, creating the contact methods they need from the
    directory entry's email and phone. A person who has rules keeps them; running it twice adds nothing."""
    person = Person.objects.select_for_update().get(pk=person.pk)
    if person.notification_rules.exists():
        return []
    methods = {method.channel: method for method in person.contact_methods.order_by("-position")}
    next_position = (max((m.position for m in methods.values()), default=-1)) + 1
    rules = []
    for channel, minutes in DEFAULT_RULES:
        method = methods.get(channel)
        if method is None:
            address = person.email if channel == ContactMethod.Channel.EMAIL else person.phone
            if not address:
                continue
            method = ContactMethod.objects.create(person=person, position=next_position, channel=channel)
            methods[channel] = method
            next_position += 1
        rules.append(NotificationRule.objects.create(person=person, contact_method=method, delay_minutes=minutes))
    return rules


def _full_clean(obj) -> None:
    try:
        obj.full_clean()
    except ValidationError as error:
        raise _domain_error(error) from error


@transaction.atomic
def add_contact_method(*, person: Person, channel: str, address: str, by) -> ContactMethod:
    """A new way to reach the person (validated: E.164 phone, email, Apprise URL), last in their list."""
    if not can_edit_rules(by, person):
        raise PermissionDenied("Only the person or a manager can change these contact methods.")
    person = Person.objects.select_for_update().get(pk=person.pk)
    position = (person.contact_methods.order_by("-position").values_list("position", flat=True).first() or 0) + 1
    method = ContactMethod(person=person, channel=channel, address=(address or "").strip(), position=position)
    _full_clean(method)
    method.save()
    return method


@transaction.atomic
def add_notification_rule(*, person: Person, contact_method: ContactMethod, delay_minutes: int, by) -> NotificationRule:
    """ "`delay_minutes` after I am paged, notify me by `contact_method`"."""
    if not can_edit_rules(by, person):
        raise PermissionDenied("Only the person or a manager can change these notification rules.")
    person = Person.objects.select_for_update().get(pk=person.pk)
    if contact_method.person_id != person.pk:
        raise DomainError("Choose one of your own contact methods.", field="contact_method")
    if NotificationRule.objects.filter(contact_method=contact_method, delay_minutes=delay_minutes).exists():
        raise DomainError("This rule exists already.", field="delay_minutes")
    rule = NotificationRule(person=person, contact_method=contact_method, delay_minutes=delay_minutes)
    _full_clean(rule)
    rule.save()
    return rule


@transaction.atomic
def remove_notification_rule(*, rule: NotificationRule, by) -> None:
    rule = NotificationRule.objects.select_for_update().select_related("person").get(pk=rule.pk)
    if not can_edit_rules(by, rule.person):
        raise PermissionDenied("Only the person or a manager can change these notification rules.")
    rule.delete()
