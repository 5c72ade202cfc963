"""When a session still owes its second factor. Decided once at sign-in (a session key), plus a per-request rule
for staff while OTP_REQUIRED_FOR_STAFF is on, so a session that predates the setting cannot skip it.

Owed by a password sign-in of an account that has a TOTP device (anyone may enrol), and, with the setting on, by
every password sign-in of staff, superusers and the admin group (they enrol first). Never by an SSO sign-in: the
identity provider is responsible for its users' multi-factor authentication."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY

from incidents import access

from .services import has_second_factor

OIDC_BACKEND = "incidents.accounts.oidc.PortalOIDCBackend"
PENDING_SESSION_KEY = "accounts_second_factor"
VERIFY, ENROL = "verify", "enrol"


def signed_in_with_sso(request) -> bool:
    return request.session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND


def second_factor_required(user) -> bool:
    """The setting's rule: staff and admins may not work without a second factor."""
    return bool(settings.OTP_REQUIRED_FOR_STAFF) and (user.is_staff or user.is_superuser or access.is_admin(user))


def note_sign_in(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver: decide whether this new session owes a second factor."""
    if request is None or not hasattr(request, "session"):
        return
    request.session.pop(PENDING_SESSION_KEY, None)
    if getattr(user, "backend", "") == OIDC_BACKEND:
        return
    if has_second_factor(user):
        request.session[PENDING_SESSION_KEY] = VERIFY
    elif second_factor_required(user):
        request.session[PENDING_SESSION_KEY] = ENROL


def pending_step(request) -> str | None:
    """VERIFY or ENROL while this request's session owes its second factor, else None. Costs no query unless
    the setting is on and a staff member is signed in."""
    session = request.session
    accessed = session.accessed
    step = session.get(PENDING_SESSION_KEY)
    if step in (VERIFY, ENROL):
        return step
    if not settings.OTP_REQUIRED_FOR_STAFF or SESSION_KEY not in session or signed_in_with_sso(request):
        # Reading the session's flags alone changes no page, so a page that ignores the session (the public
        # status page) keeps its answer without Vary: Cookie, the same for everyone.
        session.accessed = accessed
        return None
    user = request.user
    if not user.is_authenticated or not (user.is_staff or user.is_superuser) or user.is_verified():
        return None
    return VERIFY if has_second_factor(user) else ENROL


def second_factor_done(request) -> None:
    request.session.pop(PENDING_SESSION_KEY, None)
