"""Health settings: Django settings first, then the environment, then a default. Read at call time."""

import os

from django.conf import settings

DEFAULTS = {
    # A tick is stale when its last run is older than this many of its intervals.
    "HEALTH_STALE_TICKS": "2",
    # The oldest due-but-unsent page notification may wait this long before the outbox counts as stuck.
    "HEALTH_OUTBOX_MAX_AGE_SECONDS": "120",
    # /metrics: a bearer token (Authorization: Bearer <token>) and/or addresses (CIDRs, comma-separated).
    "METRICS_BEARER_TOKEN": "",
    "METRICS_ALLOWED_IPS": "",
    # Dead-man's switch: a URL the health tick requests every minute while the portal is healthy.
    "DEADMAN_SWITCH_URL": "",
    "DEADMAN_SWITCH_TIMEOUT_SECONDS": "10",
}


def get(name: str) -> str:
    if hasattr(settings, name):
        return str(getattr(settings, name))
    value = os.environ.get(name)
    return value if value not in (None, "") else DEFAULTS[name]


def get_float(name: str) -> float:
    return float(get(name))
