"""The CSP nonce is emitted (issue 17, finding 9): every <script> and <style> of a page carries the nonce of its
response's Content-Security-Policy header, which lists it for scripts and styles."""

import re

import pytest
from django.test import Client

from tests.factories import ResponderFactory

from .htmlcheck import csp_nonce

pytestmark = pytest.mark.django_db


def _nonces(html: str, tag: str) -> list[str | None]:
    found = []
    for attrs in re.findall(rf"<{tag}\b([^>]*)>", html):
        match = re.search(r'\bnonce="([^"]*)"', attrs)
        found.append(match.group(1) if match else None)
    return found


@pytest.mark.parametrize("signed_in", [False, True])
def test_scripts_carry_the_nonce_the_header_names(signed_in):
    client = Client()
    if signed_in:
        client.force_login(ResponderFactory())
    response = client.get("/" if signed_in else "/accounts/login/")
    assert response.status_code == 200
    header = response["Content-Security-Policy"]
    nonce = csp_nonce(header)
    assert nonce and len(nonce) >= 16
    directives = {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}
    assert f"'nonce-{nonce}'" in directives["script-src"] and f"'nonce-{nonce}'" in directives["style-src"]
    scripts = _nonces(response.content.decode(), "script")
    assert len(scripts) >= 2  # htmx and the portal's own script
    assert scripts == [nonce] * len(scripts)


def test_each_response_gets_its_own_nonce():
    client = Client()
    first = csp_nonce(client.get("/accounts/login/")["Content-Security-Policy"])
    second = csp_nonce(client.get("/accounts/login/")["Content-Security-Policy"])
    assert first and second and first != second


def test_api_docs_page_script_carries_the_nonce():
    client = Client()
    client.force_login(ResponderFactory())
    response = client.get("/api/redoc/")
    assert response.status_code == 200
    header = response["Content-Security-Policy"]
    nonce = csp_nonce(header)
    assert nonce and _nonces(response.content.decode(), "script") == [nonce]
    # ReDoc styles itself inline: its page allows that, which a nonce in style-src would silently cancel.
    style_src = next(d for d in header.split(";") if d.strip().startswith("style-src")).split()
    assert "'unsafe-inline'" in style_src and not any(s.startswith("'nonce-") for s in style_src)
