import json
import re
from urllib.parse import urlsplit

import pytest
import requests

from .openid_provider import openid_provider

GROUP_MAP = {
    "ip-security": "security",
    "ip-managers": ["incident_manager"],
    "ip-responders": "responder",
    "ip-everyone": "viewer",
}
ACCOUNTS = {
    "alice": {
        "password": "alice-at-the-idp",
        "claims": {
            "email": "alice@example.test",
            "email_verified": True,
            "given_name": "Alice",
            "family_name": "Ng",
            "name": "Alice Ng",
            "preferred_username": "alice",
            "groups": ["ip-security", "ip-managers", "ip-everyone", "some-other-team"],
        },
    },
    "bob": {
        "password": "bob-at-the-idp",
        "claims": {"email": "bob@example.test", "preferred_username": "bob", "groups": ["ip-responders"]},
    },
}


class ProviderAccounts:
    """The provider's user directory (a JSON file it reads at each sign-in)."""

    def __init__(self, path):
        self.path = path
        self.write(ACCOUNTS)

    def write(self, accounts):
        self.path.write_text(json.dumps(accounts))

    def set_groups(self, login, groups):
        accounts = json.loads(self.path.read_text())
        accounts[login]["claims"]["groups"] = groups
        self.write(accounts)


@pytest.fixture(scope="module")
def provider_accounts(tmp_path_factory):
    return ProviderAccounts(tmp_path_factory.mktemp("idp") / "accounts.json")


@pytest.fixture(scope="module")
def provider(provider_accounts):
    """The real OpenID Provider on loopback, its client registered for the Django test client's host."""
    with openid_provider(portal_urls=["http://testserver"], accounts_file=provider_accounts.path) as running:
        yield running


@pytest.fixture
def sso(provider, provider_accounts, settings):
    provider_accounts.write(ACCOUNTS)
    for name, value in provider.settings(group_map=GROUP_MAP).items():
        setattr(settings, name, value)
    return provider


def sign_in_at_provider(client, provider, *, login, password, next_url="/", before_callback=None):
    """The whole authorization code flow: the portal's SSO link, the provider's login form (a browser's cookie
    jar: requests.Session), and the redirect back to the portal's callback. Returns the callback's response."""
    response = client.get("/accounts/oidc/authenticate/", {"next": next_url})
    assert response.status_code == 302, response
    browser = requests.Session()
    url = response["Location"]
    for _hop in range(10):
        if not url.startswith(provider.issuer):
            break
        answer = browser.get(url, allow_redirects=False, timeout=10)
        if answer.status_code in (302, 303):
            url = requests.compat.urljoin(url, answer.headers["Location"])
            continue
        assert answer.status_code == 200, answer.text
        form_action = re.search(r'action="([^"]+)"', answer.text).group(1)
        posted = browser.post(
            requests.compat.urljoin(url, form_action),
            data={"login": login, "password": password},
            allow_redirects=False,
            timeout=10,
        )
        if posted.status_code == 401:
            return posted
        assert posted.status_code in (302, 303), posted.text
        url = requests.compat.urljoin(url, posted.headers["Location"])
    callback = urlsplit(url)
    assert callback.netloc == "testserver", url
    if before_callback is not None:
        before_callback()
    return client.get(f"{callback.path}?{callback.query}")
