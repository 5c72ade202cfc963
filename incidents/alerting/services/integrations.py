"""Alerting integrations: finding one by its key (cached per process), creating and rotating keys, the log of
refused requests, and the replay window of signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .. import redact
from ..models import Integration, IntegrationError, SeenSignature, hash_secret

log = logging.getLogger(__name__)


# Integrations (with their routing rules) found by key, per process, for a few seconds: an alert storm would
# otherwise spend one of its few database round trips per request on the same lookup. A deactivated or
# rotated key therefore keeps working for at most ALERTING_KEY_CACHE_SECONDS in each web process.
_key_cache: dict[str, tuple[float, Integration | None]] = {}
_KEY_CACHE_MAX = 1024


def find_integration_by_key(key: str) -> Integration | None:
    """The key's sha256 is looked up by equality on a unique index; the digest is compared again in constant
    time so the check does not depend on how the database compares strings."""
    if not key or len(key) > 200:
        return None
    digest = hash_secret(key)
    ttl = settings.ALERTING_KEY_CACHE_SECONDS
    now = time.monotonic()
    cached = _key_cache.get(digest) if ttl > 0 else None
    if cached is not None and cached[0] > now:
        integration = cached[1]
    else:
        integration = Integration.objects.filter(key_hash=digest, is_active=True).first()
        if integration is not None:
            integration.cached_rules = list(
                integration.rules.select_related("severity_policy").order_by("position", "id")
            )
        if ttl > 0:
            if len(_key_cache) >= _KEY_CACHE_MAX:
                _key_cache.clear()
            _key_cache[digest] = (now + ttl, integration)
    if integration is None or not hmac.compare_digest(integration.key_hash, digest):
        return None
    return integration


def forget_cached_keys() -> None:
    _key_cache.clear()


@transaction.atomic
def create_integration(*, kind: str, name: str, **fields) -> tuple[Integration, str]:
    """Create an integration and return it with its key, which is shown only this once."""
    integration = Integration(kind=kind, name=name, **fields)
    key = integration.rotate_key()
    integration.full_clean()
    integration.save()
    return integration, key


@transaction.atomic
def rotate_integration_key(*, integration: Integration) -> str:
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    key = integration.rotate_key()
    integration.save(update_fields=["key_prefix", "key_hash"])
    return key


def log_integration_error(
    *,
    kind: str,
    status_code: int,
    code: str,
    message: str,
    integration: Integration | None = None,
    field: str | None = None,
    remote_addr: str | None = None,
    body: bytes = b"",
) -> None:
    """Record a refused request. Runs in autocommit, outside any rolled-back transaction, and never raises:
    failing to log must not turn a clean 4xx into a 500."""
    try:
        IntegrationError.objects.create(
            integration=integration,
            kind=kind,
            status_code=status_code,
            code=code[:40],
            message=redact.redact_text(message)[:500].replace("\x00", "\\x00"),
            field=(field or "")[:200],
            remote_addr=remote_addr or None,
            # Keys and secrets never reach the table managers read (a PagerDuty body carries its routing_key).
            body_excerpt=redact.redacted_excerpt(body, limit=2000),
        )
    except Exception:
        log.exception("could not record an integration error")


# --- Replays of signed deliveries ------------------------------------------------------------------------------


def signature_digest(integration: Integration, signature: str) -> str:
    return hashlib.sha256(f"{integration.pk}:{signature.lower()}".encode()).hexdigest()


def claim_signature(integration: Integration, signature: str, *, window_seconds: int | None = None) -> bool:
    """Record a verified signature; False when the same one was accepted within the replay window. One statement:
    INSERT, or take over the row when its sighting is older than the window (so concurrent deliveries of one
    replay cannot both win)."""
    window = window_seconds if window_seconds is not None else settings.ALERTING_REPLAY_WINDOW_SECONDS
    now = timezone.now()
    table = connection.ops.quote_name(SeenSignature._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (digest, seen_at) VALUES (%s, %s) "  # noqa: S608 - table name from the model
            f"ON CONFLICT (digest) DO UPDATE SET seen_at = excluded.seen_at WHERE {table}.seen_at < %s "
            "RETURNING id",
            [signature_digest(integration, signature), now, now - timedelta(seconds=window)],
        )
        return cursor.fetchone() is not None


def forget_signature(integration: Integration, signature: str) -> None:
    """The delivery was not stored (the database failed): its sender's identical retry must be accepted."""
    SeenSignature.objects.filter(digest=signature_digest(integration, signature)).delete()


def prune_seen_signatures(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    oldest = now - timedelta(seconds=settings.ALERTING_REPLAY_WINDOW_SECONDS)
    deleted, _ = SeenSignature.objects.filter(seen_at__lt=oldest).delete()
    return deleted
