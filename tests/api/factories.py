"""Factories for the API and alerting tests."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.utils import timezone

from incidents.alerting.models import ApiToken, Integration
from incidents.alerting.services.integrations import create_integration
from incidents.alerting.services.tokens import create_api_token

FIXTURES = Path(__file__).parent / "fixtures"

# The fixtures are real payloads captured as if it were this instant. Every timestamp in them is moved by the same
# amount so the payload reads as sent "now" (whatever today is, a year from now included): a test that compares an
# event time with now then compares like with like.
FIXTURE_NOW = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _shift(match: re.Match, delta: timedelta) -> str:
    whole, fraction, zone = match.group(1), match.group(2) or "", match.group(3)
    moved = datetime.fromisoformat(whole) + delta
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone


def fixture_text(name: str, **replace) -> str:
    """The fixture with its timestamps moved to now; `replace` substitutions are applied before the move."""
    text = (FIXTURES / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    # Whole seconds keep each payload's own fraction digits (Alertmanager's nanoseconds, PagerDuty's milliseconds).
    delta = timedelta(seconds=int((timezone.now() - FIXTURE_NOW).total_seconds()))
    return _TIMESTAMP.sub(lambda match: _shift(match, delta), text)


def fixture_bytes(name: str, **replace) -> bytes:
    return fixture_text(name, **replace).encode()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_text(name))


def make_integration(kind: str, name: str | None = None, **fields) -> tuple[Integration, str]:
    return create_integration(kind=kind, name=name or f"{kind} integration", **fields)


def make_token(user, name: str = "tests") -> tuple[ApiToken, str]:
    return create_api_token(user=user, name=name)
