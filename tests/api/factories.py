"""Factories for the API and alerting tests."""

import json
from pathlib import Path

from incidents.alerting import services as alerting_services
from incidents.alerting.models import ApiToken, Integration

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str, **replace) -> bytes:
    text = (FIXTURES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()


def fixture_json(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def make_integration(kind: str, name: str | None = None, **fields) -> tuple[Integration, str]:
    return alerting_services.create_integration(kind=kind, name=name or f"{kind} integration", **fields)


def make_token(user, name: str = "tests") -> tuple[ApiToken, str]:
    return alerting_services.create_api_token(user=user, name=name)
