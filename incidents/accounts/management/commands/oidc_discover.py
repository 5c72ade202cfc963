"""Print the SSO environment lines for an OpenID Provider, read from its discovery document."""

import requests
from django.core.management.base import BaseCommand, CommandError

FIELDS = {
    "OIDC_ISSUER": "issuer",
    "OIDC_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_USERINFO_ENDPOINT": "userinfo_endpoint",
    "OIDC_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_END_SESSION_ENDPOINT": "end_session_endpoint",
}


class Command(BaseCommand):
    help = "Print OIDC_* environment lines from <issuer>/.well-known/openid-configuration."

    def add_arguments(self, parser):
        parser.add_argument("issuer")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, issuer, timeout, **options):
        url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        try:
            response = requests.get(url, timeout=timeout)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise CommandError(f"Could not read {url}: {exc}") from exc
        if document.get("issuer") != issuer:
            raise CommandError(f"The document's issuer {document.get('issuer')!r} is not {issuer!r}.")
        for name, field in FIELDS.items():
            value = document.get(field)
            if value:
                self.stdout.write(f"{name}={value}")
