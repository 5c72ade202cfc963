"""Alerting configuration: Django settings first, then the environment, then a default.
Read at call time so tests can use override_settings."""

import os

from django.conf import settings

DEFAULTS = {
    # Largest accepted webhook body; bigger ones are refused with 413 before being parsed.
    "ALERTING_MAX_BODY_BYTES": 1_048_576,
    # Requests per minute per integration (an integration can override it) and per API token.
    "ALERTING_RATE_LIMIT_PER_MINUTE": 6000,
    "API_TOKEN_RATE_LIMIT_PER_MINUTE": 1200,
    # The longest an API token lives; also ends older tokens when lowered.
    "API_TOKEN_MAX_LIFETIME_DAYS": 365,
    # "Recent changes" on an incident: change events to its services this long before it was detected.
    "ALERTING_RECENT_CHANGES_HOURS": 24,
    # Integrations found by key are remembered this long per web process (0 disables the cache).
    "ALERTING_KEY_CACHE_SECONDS": 5,
    # A Grafana signature timestamp older than this is a replay.
    "ALERTING_SIGNATURE_MAX_AGE_SECONDS": 300,
    # A signed delivery (Sentry, Grafana) seen again byte for byte within this many seconds is a replay.
    "ALERTING_REPLAY_WINDOW_SECONDS": 86400,
}


def get(name: str) -> int:
    if hasattr(settings, name):
        return int(getattr(settings, name))
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else DEFAULTS[name]
