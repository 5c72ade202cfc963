"""System checks for the sign-in settings: a half-configured SSO or a bad group map fails `manage.py check`
(and migrate, runserver) rather than the first person who clicks the button; `check --deploy` warns when staff
may sign in with a password alone."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .services import group_map

SSO_ENDPOINTS = {
    "OIDC_ISSUER": "OIDC_OP_ISSUER",
    "OIDC_CLIENT_SECRET": "OIDC_RP_CLIENT_SECRET",
    "OIDC_AUTHORIZATION_ENDPOINT": "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "OIDC_TOKEN_ENDPOINT": "OIDC_OP_TOKEN_ENDPOINT",
    "OIDC_USERINFO_ENDPOINT": "OIDC_OP_USER_ENDPOINT",
    "OIDC_JWKS_ENDPOINT": "OIDC_OP_JWKS_ENDPOINT",
}


@checks.register(checks.Tags.security)
def check_sso_settings(app_configs=None, **kwargs):
    errors = []
    try:
        group_map()
    except ImproperlyConfigured as exc:
        errors.append(checks.Error(str(exc), id="accounts.E001"))
    if settings.OIDC_RP_CLIENT_ID:
        missing = [name for name, setting in SSO_ENDPOINTS.items() if not getattr(settings, setting)]
        if missing:
            errors.append(
                checks.Error(
                    f"OIDC_CLIENT_ID is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not.",
                    hint="`manage.py oidc_discover <issuer>` prints the endpoints from the provider's discovery.",
                    id="accounts.E002",
                )
            )
    return errors


@checks.register(checks.Tags.security, deploy=True)
def check_second_factor_for_staff(app_configs=None, **kwargs):
    if settings.OTP_REQUIRED_FOR_STAFF:
        return []
    return [
        checks.Warning(
            "OTP_REQUIRED_FOR_STAFF is off: staff and admins can sign in with a password alone.",
            hint="Unset OTP_REQUIRED_FOR_STAFF (on by default when DEBUG is off) or set it to 1.",
            id="accounts.W001",
        )
    ]
