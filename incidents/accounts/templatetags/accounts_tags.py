from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse

from ..oidc import sso_configured

register = template.Library()


@register.inclusion_tag("accounts/partials/sso_button.html")
def sso_sign_in(next_url=""):
    """The login page's "Sign in with <provider>" button, when single sign-on is configured."""
    if not sso_configured():
        return {"url": ""}
    query = f"?{urlencode({'next': next_url})}" if next_url else ""
    return {"url": f"{reverse('accounts:oidc-authenticate')}{query}", "provider": settings.OIDC_PROVIDER_NAME}
