"""Setting a user's time zone: chosen on the profile page, or guessed once from the browser."""

from __future__ import annotations

from datetime import UTC, tzinfo

from django.db import transaction

from incidents.errors import DomainError

from .models import Profile
from .zones import zone, zone_names

SESSION_KEY = "portal_time_zone"  # the zone's name; "" = no profile yet (the page asks the browser)


def profile_zone_name(user) -> str:
    return Profile.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""


def zone_of(user) -> tzinfo:
    """The zone to write to `user` in (emails): their profile's, else UTC."""
    return zone(profile_zone_name(user) if user is not None and user.pk else "") or UTC


def zones_of(users) -> dict[int, tzinfo]:
    """{user pk: zone} for messages written to several people one by one (reminders), in one query: each user's
    profile zone; users without one are left out (the caller picks the fallback)."""
    rows = Profile.objects.filter(user__in=[user.pk for user in users]).values_list("user_id", "time_zone")
    return {user_id: found for user_id, name in rows if (found := zone(name)) is not None}


def remember_zone_in_session(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = profile_zone_name(user)


def _check(name: str) -> str:
    name = (name or "").strip()
    if name not in zone_names():
        raise DomainError(f"{name or 'Nothing'} is not a time zone name (IANA, e.g. Europe/Berlin).", field="time_zone")
    return name


@transaction.atomic
def set_time_zone(*, user, time_zone: str) -> Profile:
    """The user's choice; replaces a guess or an earlier choice."""
    name = _check(time_zone)
    profile, _ = Profile.objects.select_for_update().get_or_create(user=user, defaults={"time_zone": name})
    profile.time_zone, profile.time_zone_source = name, Profile.Source.USER
    profile.save(update_fields=["time_zone", "time_zone_source", "updated_at"])
    return profile


@transaction.atomic
def guess_time_zone(*, user, time_zone: str) -> Profile:
    """The browser's zone, stored once: a user who already has one (guessed or chosen) keeps it."""
    name = _check(time_zone)
    profile, _ = Profile.objects.get_or_create(
        user=user, defaults={"time_zone": name, "time_zone_source": Profile.Source.BROWSER}
    )
    return profile
