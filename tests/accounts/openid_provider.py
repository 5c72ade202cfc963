"""Runs the test OpenID Provider (tests/oidc/provider.mjs: npm's oidc-provider on Node.js) on a free loopback
port, and points the portal's OIDC settings at it the way an operator would: from its discovery document."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from time_machine import escape_hatch

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc"
CLIENT_ID = "incident-portal"
CLIENT_SECRET = "portal-client-secret-for-tests"
START_TIMEOUT = 30  # seconds: Node's start-up on a busy 2-core machine


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    discovery: dict

    def settings(self, *, group_map: dict, scopes: str = "openid email profile groups") -> dict:
        d = self.discovery
        return {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_ISSUER": d["issuer"],
            "OIDC_OP_AUTHORIZATION_ENDPOINT": d["authorization_endpoint"],
            "OIDC_OP_TOKEN_ENDPOINT": d["token_endpoint"],
            "OIDC_OP_USER_ENDPOINT": d["userinfo_endpoint"],
            "OIDC_OP_JWKS_ENDPOINT": d["jwks_uri"],
            "OIDC_OP_END_SESSION_ENDPOINT": d["end_session_endpoint"],
            "OIDC_RP_SCOPES": scopes,
            "OIDC_PROVIDER_NAME": "Test IdP",
            "OIDC_GROUP_MAP": json.dumps(group_map),
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def openid_provider(*, portal_urls: list[str], accounts_file: Path):
    """Start the provider with one confidential client whose redirect URIs are under each of portal_urls.
    accounts_file (JSON: login -> password and claims) is read by the provider at each sign-in."""
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("The test OpenID Provider is not installed: run `make oidc-provider` (Node.js + npm ci).")
    config = {
        "port": _free_port(),
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{url}/accounts/oidc/callback/" for url in portal_urls],
                "post_logout_redirect_uris": [f"{url}/accounts/login/" for url in portal_urls],
            }
        ],
        "accounts_file": str(accounts_file),
        # The suite's clock may be shifted (time-machine, TEST_CLOCK_SHIFT_DAYS); the provider runs on the same.
        "clock_offset_seconds": round(time.time() - escape_hatch.time.time()) if escape_hatch.is_travelling() else 0,
    }
    env = {**os.environ, "OP_CONFIG": json.dumps(config), "NODE_ENV": "test"}
    # stderr to a file, not a pipe: a full pipe can never block the provider.
    with tempfile.TemporaryFile(mode="w+") as stderr:
        yield from _run(node, env, stderr)


def _run(node, env, stderr):
    process = subprocess.Popen(  # noqa: S603 - fixed argv, our own script
        [node, str(PROVIDER_DIR / "provider.mjs")],
        cwd=PROVIDER_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        issuer = _wait_for_listening(process, stderr)
        discovery = _wait_for_discovery(issuer)
        yield RunningProvider(issuer=issuer, discovery=discovery)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


def _wait_for_listening(process, stderr) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr.seek(0)
                pytest.fail(f"The OpenID Provider exited ({process.returncode}): {stderr.read()[-2000:]}")
            if selector.select(timeout=0.5):
                line = process.stdout.readline()
                if line.startswith("LISTENING "):
                    return line.split(" ", 1)[1].strip()
    pytest.fail(f"The OpenID Provider did not start within {START_TIMEOUT} s.")


def _wait_for_discovery(issuer: str) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    last_error = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
            if response.status_code == 200:
                return response.json()
            last_error = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last_error = exc
        time.sleep(0.2)
    pytest.fail(f"The OpenID Provider's discovery did not answer within {START_TIMEOUT} s: {last_error}")
