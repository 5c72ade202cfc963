"""Sign-in pages: single sign-on (the OpenID Connect redirect and callback, log-out at the provider) and the
two-factor steps (enrolment with a QR code, the code after the password, recovery codes)."""

from __future__ import annotations

import logging
from base64 import b32encode
from urllib.parse import urlencode

import jwt
import requests
import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from incidents.errors import DomainError

from . import services
from .forms import CodeForm
from .oidc import sso_configured
from .second_factor import (
    ENROL,
    PENDING_SESSION_KEY,
    second_factor_done,
    second_factor_required,
    signed_in_with_sso,
)

logger = logging.getLogger(__name__)


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _with_next(name: str, request) -> str:
    return f"{reverse(name)}?{urlencode({'next': _next_url(request)})}"


# --- Single sign-on ------------------------------------------------------------------------------------------


def oidc_authenticate(request):
    """The login page's SSO button: off to the provider's authorization endpoint (state, nonce, PKCE kept in
    the session)."""
    if not sso_configured():
        raise Http404("Single sign-on is not configured.")
    return OIDCAuthenticationRequestView.as_view()(request)


class OIDCCallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back. Anything that goes wrong (a refused code, an unreachable provider, a token
    that does not verify, a replayed state) ends on the login page with a message, never a 500."""

    @property
    def failure_url(self):
        return reverse("login")

    def login_failure(self):
        messages.error(
            self.request,
            f"Sign-in with {settings.OIDC_PROVIDER_NAME} did not succeed. Try again, or ask an administrator.",
        )
        return super().login_failure()

    def get(self, request):
        if not sso_configured():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except (SuspiciousOperation, requests.RequestException, jwt.PyJWTError, ValueError, KeyError) as exc:
            logger.warning("SSO callback refused: %s: %s", type(exc).__name__, exc)
            return self.login_failure()


class LogoutView(auth_views.LogoutView):
    """Log-out; an SSO session is also ended at the provider (RP-initiated logout), which sends the browser back
    to the login page. That hop is a page that moves on by itself rather than a redirect, because the CSP's
    form-action (only this site) also covers redirects that follow a form's POST."""

    def post(self, request, *args, **kwargs):
        end_session = settings.OIDC_OP_END_SESSION_ENDPOINT
        if not (end_session and sso_configured() and signed_in_with_sso(request)):
            return super().post(request, *args, **kwargs)
        id_token = request.session.get("oidc_id_token")
        auth_logout(request)
        params = {
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
        }
        if id_token:
            params["id_token_hint"] = id_token
        url = f"{end_session}{'&' if '?' in end_session else '?'}{urlencode(params)}"
        response = render(
            request, "accounts/provider_logout.html", {"url": url, "provider": settings.OIDC_PROVIDER_NAME}
        )
        response["Cache-Control"] = "no-store"
        return response


# --- Two-factor ----------------------------------------------------------------------------------------------


@never_cache
@login_required
def two_factor_verify(request):
    user = request.user
    if signed_in_with_sso(request):
        second_factor_done(request)
        return redirect(_next_url(request))
    if not services.has_second_factor(user):
        if second_factor_required(user):
            request.session[PENDING_SESSION_KEY] = ENROL
            return redirect(_with_next("accounts:two-factor-setup", request))
        second_factor_done(request)
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            device = services.verify_second_factor(user=user, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", exc.message)
        else:
            if device is None:
                form.add_error("code", "That code is not right, or that recovery code was used already.")
            else:
                request.session.cycle_key()
                otp_login(request, device)
                second_factor_done(request)
                if isinstance(device, StaticDevice):
                    left = services.recovery_codes_left(user)
                    messages.warning(
                        request,
                        f"You signed in with a recovery code; {left} left. Each works once: make new ones on "
                        "the two-factor page if you are running low.",
                    )
                return redirect(_next_url(request))
    return render(request, "accounts/two_factor_verify.html", {"form": form, "next": _next_url(request)})


@never_cache
@login_required
def two_factor_setup(request):
    user = request.user
    context = {"next": _next_url(request), "provider": settings.OIDC_PROVIDER_NAME}
    if signed_in_with_sso(request):
        return render(request, "accounts/two_factor_status.html", {**context, "sso": True})
    if services.has_second_factor(user):
        if not user.is_verified():
            return redirect(_with_next("accounts:two-factor-verify", request))
        codes_left = services.recovery_codes_left(user)
        return render(request, "accounts/two_factor_status.html", {**context, "codes_left": codes_left})
    device = services.start_totp_enrolment(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            enrolment = services.confirm_totp_enrolment(user=user, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", exc.message)
        else:
            request.session.cycle_key()
            otp_login(request, enrolment.device)
            second_factor_done(request)
            return render(request, "accounts/recovery_codes.html", {**context, "codes": enrolment.recovery_codes})
    config_url = device.config_url
    return render(
        request,
        "accounts/two_factor_setup.html",
        {
            **context,
            "form": form,
            "config_url": config_url,
            "secret": b32encode(device.bin_key).decode(),
            "qr_svg": segno.make(config_url, error="m").svg_inline(scale=4, title="QR code to scan"),
            "required": second_factor_required(user),
        },
    )


@never_cache
@require_POST
@login_required
def recovery_codes(request):
    """New recovery codes (the old ones stop working), for a session verified with its second factor."""
    user = request.user
    if not user.is_verified():
        return redirect(_with_next("accounts:two-factor-verify", request))
    try:
        codes = services.regenerate_recovery_codes(user=user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("accounts:two-factor-setup")
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "next": _next_url(request)})
