"""Personal API tokens for the portal API. Kept free of rest_framework.views imports: DRF imports this module
while its own settings are loading."""

import hmac

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from incidents.alerting.models import ApiToken, hash_secret


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer ipt_...` (or `Token ipt_...`): a personal token, stored as sha256."""

    keywords = ("bearer", "token")
    LAST_USED_GRANULARITY = 60  # seconds; one UPDATE a minute per token, not one per request

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() not in self.keywords:
            return None
        key = key.strip()
        if not key.startswith(ApiToken.PREFIX) or len(key) > 200:
            raise exceptions.AuthenticationFailed("That is not a portal API token (they start with 'ipt_').")
        digest = hash_secret(key)
        token = ApiToken.objects.active().select_related("user").filter(key_hash=digest).first()
        # Found by an indexed equality on the digest; compared again in constant time, as integration keys are.
        if token is None or not hmac.compare_digest(token.key_hash, digest) or not token.user.is_active:
            raise exceptions.AuthenticationFailed("The API token is not valid, expired or revoked.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > self.LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
