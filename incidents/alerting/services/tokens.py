"""Personal API tokens: created by their owner, renamed only by them, revoked by them or by staff."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents import access
from incidents.errors import DomainError, PermissionDenied
from incidents.profiles.zones import format_moment

from ..models import ApiToken, hash_secret


def check_api_token_expiry(expires_at: datetime | None, *, now: datetime | None = None) -> datetime:
    """The expiry a new token gets: the one asked for, in the future and at most API_TOKEN_MAX_LIFETIME_DAYS
    away, or that maximum when none is asked for."""
    now = now or timezone.now()
    max_days = settings.API_TOKEN_MAX_LIFETIME_DAYS
    latest = now + timedelta(days=max_days)
    if expires_at is None:
        return latest
    if expires_at <= now:
        raise DomainError("The expiry must be in the future.", field="expires_at")
    if expires_at > latest:
        raise DomainError(
            f"A token lives at most {max_days} days: choose an expiry on or before {format_moment(latest)}.",
            field="expires_at",
        )
    return expires_at


@transaction.atomic
def create_api_token(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal token for `user`, who is also the one asking: nobody creates a token for someone else,
    and the owner never changes afterwards. Every token expires, at most API_TOKEN_MAX_LIFETIME_DAYS from now
    (also the expiry when none is given). Returns the token and its key, which is shown only this once."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Name the token after what will use it.", field="name")
    now = timezone.now()
    expires_at = check_api_token_expiry(expires_at, now=now)
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        key_prefix=key[:12],
        key_hash=hash_secret(key),
        created_at=now,
        expires_at=expires_at,
    )
    return token, key


@transaction.atomic
def rename_api_token(*, token: ApiToken, by, name: str) -> ApiToken:
    """Only the owner renames a token; the name is the only thing that changes after creation."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if by is None or token.user_id != by.pk:
        raise PermissionDenied("Only the token's owner can change it; staff may only revoke it.")
    name = (name or "").strip()
    if not name:
        raise DomainError("Name the token after what will use it.", field="name")
    if token.name != name[:100]:
        token.name = name[:100]
        token.save(update_fields=["name"])
    return token


@transaction.atomic
def revoke_api_token(*, token: ApiToken, by, using: ApiToken | None = None) -> ApiToken:
    """The owner or staff (incident managers, admins) revoke a token. A request authenticated by a token
    (`using`) may revoke only that token itself: a token never acts on its siblings."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if using is not None and using.pk != token.pk:
        raise PermissionDenied("An API token can revoke only itself; manage other tokens from a signed-in browser.")
    if by is not None and token.user_id != by.pk and not access.is_manager(by):
        raise PermissionDenied("Only the token's owner or staff can revoke it.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
