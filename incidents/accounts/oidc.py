"""Single sign-on with OpenID Connect through mozilla-django-oidc: the authorization code flow with PKCE, the ID
token's signature checked against the provider's JWKS and, here, its issuer and audience too. Who the user is
and which groups they get is decided by services.sign_in_from_identity_provider."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from incidents.errors import DomainError

from . import services

logger = logging.getLogger(__name__)


def sso_configured() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID and settings.OIDC_OP_AUTHORIZATION_ENDPOINT)


class PortalOIDCBackend(OIDCAuthenticationBackend):
    def authenticate(self, request, **kwargs):
        # Django asks every backend; this one answers only the OIDC callback (it passes the nonce).
        if not sso_configured() or "nonce" not in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        if kwargs.get("nonce") is not None:  # the ID token (userinfo may also come as a JWT)
            audience = payload.get("aud")
            audiences = audience if isinstance(audience, list) else [audience]
            if settings.OIDC_OP_ISSUER and payload.get("iss") != settings.OIDC_OP_ISSUER:
                raise SuspiciousOperation(f"ID token issuer {payload.get('iss')!r} is not OIDC_ISSUER.")
            if self.OIDC_RP_CLIENT_ID not in audiences:
                raise SuspiciousOperation("ID token audience does not include OIDC_CLIENT_ID.")
            self._id_token_payload = payload
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        if claims.get("sub") != payload.get("sub"):
            # OpenID Connect Core 5.3.2: the UserInfo sub must be the ID token's.
            raise SuspiciousOperation("UserInfo sub does not match the ID token.")
        issuer = settings.OIDC_OP_ISSUER or payload.get("iss", "")
        try:
            return services.sign_in_from_identity_provider(issuer=issuer, claims=claims)
        except DomainError as exc:
            logger.warning("SSO sign-in refused: %s", exc.message)
            return None
