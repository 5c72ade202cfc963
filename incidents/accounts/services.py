"""Sign-in state changes: accounts made and kept in step from an identity provider's claims (SSO), and the
two-factor devices of accounts that sign in with a password (a TOTP app plus single-use recovery codes)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django_otp import verify_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from incidents import access
from incidents.audit.models import AuditAction
from incidents.audit.recorder import record_change
from incidents.errors import DomainError

from .models import SsoIdentity

RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"
# Portal groups that open the Django admin: an SSO user in one of them is staff.
STAFF_GROUPS = frozenset({access.ADMIN, access.INCIDENT_MANAGER})


class SignInRefused(DomainError):
    status_code = 403


# --- Single sign-on ------------------------------------------------------------------------------------------


def group_map() -> dict[str, tuple[str, ...]]:
    """settings.OIDC_GROUP_MAP (JSON: claim value -> portal group name or list of names), checked."""
    raw = settings.OIDC_GROUP_MAP
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ImproperlyConfigured(f"OIDC_GROUP_MAP is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ImproperlyConfigured("OIDC_GROUP_MAP must be a JSON object: claim value -> portal group(s).")
    mapping = {}
    for value, groups in data.items():
        names = (groups,) if isinstance(groups, str) else groups
        if not isinstance(names, list | tuple) or not all(isinstance(name, str) for name in names):
            raise ImproperlyConfigured(f"OIDC_GROUP_MAP[{value!r}] must be a group name or a list of group names.")
        unknown = sorted(set(names) - set(access.ALL_GROUPS))
        if unknown:
            raise ImproperlyConfigured(
                f"OIDC_GROUP_MAP[{value!r}] names unknown group(s) {', '.join(unknown)}; "
                f"the portal's groups are {', '.join(access.ALL_GROUPS)}."
            )
        mapping[value] = tuple(names)
    return mapping


def groups_from_claims(claims: dict) -> tuple[frozenset[str], frozenset[str]]:
    """(portal groups the map manages, those of them the claims grant). A claim may be a list or one string."""
    mapping = group_map()
    values = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        values = []
    managed = frozenset(name for names in mapping.values() for name in names)
    granted = frozenset(name for value in values if isinstance(value, str) for name in mapping.get(value, ()))
    return managed, granted


_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def _username_base(claims: dict) -> str:
    for candidate in (claims.get("preferred_username"), (claims.get("email") or "").split("@")[0]):
        if isinstance(candidate, str):
            cleaned = _USERNAME_UNSAFE.sub("", candidate)[:140]
            if cleaned:
                return cleaned
    return "sso-user"


def _free_username(base: str) -> str:
    User = get_user_model()
    taken = set(User.objects.filter(username__startswith=base).values_list("username", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _str_claim(claims: dict, name: str, limit: int) -> str:
    value = claims.get(name)
    return value[:limit] if isinstance(value, str) else ""


def sign_in_from_identity_provider(*, issuer: str, claims: dict):
    """The user the provider's account (issuer, sub) signs in as: made on its first sign-in (no usable password,
    so it can only sign in through the provider), its name and e-mail refreshed, and its groups re-synced from
    the groups claim. Matching is by `sub`, never by e-mail: an e-mail that a provider lets its users edit must
    not open a local account. Every change is audited (users and group memberships are audited models)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SignInRefused("The identity provider sent no usable subject (sub) claim.", field="sub")
    # Two first sign-ins of one account at once: the loser of the unique constraint finds the winner's row.
    for _attempt in range(3):
        try:
            return _sign_in(issuer=issuer, subject=subject, claims=claims)
        except IntegrityError:
            continue
    raise SignInRefused("The account could not be created; try again.")


@transaction.atomic
def _sign_in(*, issuer: str, subject: str, claims: dict):
    User = get_user_model()
    identity = SsoIdentity.objects.filter(issuer=issuer, subject=subject).first()
    fields = {
        "email": _str_claim(claims, "email", 254),
        "first_name": _str_claim(claims, "given_name", 150),
        "last_name": _str_claim(claims, "family_name", 150),
    }
    if identity is None:
        with transaction.atomic():  # a savepoint: a lost race leaves this transaction usable for the retry
            user = User.objects.create_user(_free_username(_username_base(claims)), password=None, **fields)
            SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    else:
        user = User.objects.select_for_update().get(pk=identity.user_id)
        if not user.is_active:
            raise SignInRefused("This account is deactivated in the portal.")
        changed = [name for name, value in fields.items() if value and getattr(user, name) != value]
        for name in changed:
            setattr(user, name, fields[name])
        if changed:
            user.save(update_fields=changed)
    sync_groups(user=user, claims=claims)
    return user


def sync_groups(*, user, claims: dict) -> None:
    """Make the user's membership of the mapped portal groups what the claims say; other groups stay. Staff
    (the Django admin) follows the admin and incident_manager groups; superusers are left as they are."""
    managed, granted = groups_from_claims(claims)
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    to_add, to_remove = granted - current, (managed - granted) & current
    if to_add:
        user.groups.add(*Group.objects.filter(name__in=to_add))
    if to_remove:
        user.groups.remove(*Group.objects.filter(name__in=to_remove))
    if not user.is_superuser:
        is_staff = user.groups.filter(name__in=STAFF_GROUPS).exists()
        if user.is_staff != is_staff:
            user.is_staff = is_staff
            user.save(update_fields=["is_staff"])
    user._portal_group_names = None  # access.group_names caches per user object


# --- Two-factor ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    recovery_codes: list[str]


def normalize_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()[:32]


def confirmed_totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def start_totp_enrolment(*, user) -> TOTPDevice:
    """The unconfirmed TOTP device whose secret the enrolment page shows: the same one until it is confirmed,
    so reloading the page does not change the QR code the user already scanned."""
    if has_second_factor(user):
        raise DomainError("Two-factor sign-in is already set up for this account.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def confirm_totp_enrolment(*, user, code: str) -> Enrolment:
    """Confirm the pending device with a code from the app; issue fresh recovery codes (shown once)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None or has_second_factor(user):
        raise DomainError("No two-factor set-up is in progress; open the set-up page again.", field="code")
    if not device.verify_is_allowed()[0]:
        raise DomainError("Too many wrong codes. Wait a few seconds, then try again.", field="code")
    # Outside the transaction below: a wrong code's throttle count must be saved, not rolled back.
    if not device.verify_token(normalize_code(code)):
        raise DomainError("That code is not right. Enter the 6-digit code your app shows now.", field="code")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        record_change(
            action=AuditAction.CREATED,
            object_type_label="otp_totp.totpdevice",
            object_id=str(device.pk),
            object_repr=f"Two-factor sign-in of {user.get_username()}",
            after={"user": user.get_username(), "device": device.name, "confirmed": True},
        )
        codes = _replace_recovery_codes(user)
    return Enrolment(device=device, recovery_codes=codes)


@transaction.atomic
def regenerate_recovery_codes(*, user) -> list[str]:
    """New recovery codes; the old ones stop working. Only for an account that has two-factor set up."""
    if not has_second_factor(user):
        raise DomainError("Set up two-factor sign-in first.")
    return _replace_recovery_codes(user)


def _replace_recovery_codes(user) -> list[str]:
    device, _ = StaticDevice.objects.select_for_update().get_or_create(
        user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    record_change(
        action=AuditAction.CHANGED,
        object_type_label="otp_static.staticdevice",
        object_id=str(device.pk),
        object_repr=f"Recovery codes of {user.get_username()}",
        field="recovery codes",
        after={"user": user.get_username(), "issued": len(codes)},
    )
    return codes


def verify_second_factor(*, user, code: str):
    """The device that accepts the code: a 6-digit code goes to the TOTP app, anything else is tried as a
    recovery code, which is then used up. None when nothing accepts it. Wrong codes slow further tries down
    (django-otp's throttling, per device); a throttled device refuses even the right code until it cools off."""
    code = normalize_code(code)
    if re.fullmatch(r"\d{6}", code):
        devices = TOTPDevice.objects.filter(user=user, confirmed=True)
    else:
        devices = StaticDevice.objects.filter(user=user, confirmed=True)
    for device in devices:
        allowed, _details = device.verify_is_allowed()
        if not allowed:
            raise DomainError("Too many wrong codes. Wait a few seconds, then try again.", field="code")
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            if isinstance(verified, StaticDevice):
                with transaction.atomic():
                    record_change(
                        action=AuditAction.CHANGED,
                        object_type_label="otp_static.staticdevice",
                        object_id=str(verified.pk),
                        object_repr=f"Recovery codes of {user.get_username()}",
                        field="recovery codes",
                        after={"user": user.get_username(), "used": 1, "left": verified.token_set.count()},
                    )
            return verified
    return None


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
