"""State changes for alerting: ingesting normalised alert events, recording change events, integration keys
and API tokens, and the log of refused requests.

Ingestion runs in one transaction per request: a 2xx answer means every event of the request is committed.
Deduplication is the partial unique index on (integration, dedup_key) WHERE resolved_at IS NULL, used by
INSERT ... ON CONFLICT, so concurrent deliveries of one key fold into one group without check-then-insert.

Groups and change events are written with raw SQL, QuerySet.update() and bulk_create(), which the audit signals do
not see: their audit records (group opened, linked to an incident, acknowledged, resolved; change recorded) are
written here through the audit trail's BulkRecorder, in the same transaction (on the single-statement path, by
the same statement).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from incidentportal.db import prepared_cursor
from incidents import access, timeline
from incidents import services as incident_services
from incidents.audit.models import AuditRecord
from incidents.audit.recorder import BulkRecorder
from incidents.errors import DomainError, PermissionDenied
from incidents.models import DetectionSource, Incident, Service, SeverityPolicy
from incidents.profiles.zones import format_moment
from incidents.statuspage.selectors import is_under_maintenance

from . import conf, redact
from .models import (
    AlertEvent,
    AlertGroup,
    ApiToken,
    ChangeEvent,
    EventAction,
    GroupStatus,
    Integration,
    IntegrationError,
    RouteAction,
    RoutingRule,
    SeenSignature,
    Severity,
    hash_secret,
)
from .parsers import AlertEventIn, ChangeIn, clamp_to_now

log = logging.getLogger(__name__)

# Without a rule naming a severity policy, an auto-declared incident takes its level from the alert's severity.
DEFAULT_POLICY_FOR_SEVERITY = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P3",
}
SEVERITY_ORDER = [Severity.CRITICAL, Severity.ERROR, Severity.WARNING, Severity.INFO]
RETRIES_ON_DEADLOCK = 3


# --- Integrations and their keys --------------------------------------------------------------------------------


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
    ttl = conf.get("ALERTING_KEY_CACHE_SECONDS")
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
    window = window_seconds if window_seconds is not None else conf.get("ALERTING_REPLAY_WINDOW_SECONDS")
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
    oldest = now - timedelta(seconds=conf.get("ALERTING_REPLAY_WINDOW_SECONDS"))
    deleted, _ = SeenSignature.objects.filter(seen_at__lt=oldest).delete()
    return deleted


# --- Routing --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    service_id: int | None
    policy_level: str
    action: str


def should_auto_declare(integration: Integration, service: Service | None, at: datetime) -> bool:
    """The one place that decides whether an alert may declare an incident on its own (the routing rule has
    already said "declare"). Inside a scheduled maintenance window of the service, alerts only attach or record."""
    if not integration.is_active:
        return False
    return service is None or not is_under_maintenance(service, at)


def route_for(event: AlertEventIn, *, integration: Integration, rules: list[RoutingRule], services: dict) -> Route:
    for rule in rules:
        if rule.matches(labels=event.labels, severity=event.severity):
            service = rule.service_id or getattr(services.get(event.service_slug), "pk", None)
            level = (
                rule.severity_policy.level if rule.severity_policy_id else DEFAULT_POLICY_FOR_SEVERITY[event.severity]
            )
            return Route(service or integration.default_service_id, level, rule.action)
    service = getattr(services.get(event.service_slug), "pk", None) or integration.default_service_id
    return Route(service, DEFAULT_POLICY_FOR_SEVERITY[event.severity], integration.default_action)


# --- Ingestion -----------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    dedup_key: str
    action: str
    result: str  # opened, deduplicated, acknowledged, resolved, no_open_group
    group_id: int | None
    incident: str | None = None

    def as_dict(self) -> dict:
        return {
            "dedup_key": self.dedup_key,
            "action": self.action,
            "result": self.result,
            "alert_group": self.group_id,
            "incident": self.incident,
        }


def ingest_alert_events(*, integration: Integration, events: list[AlertEventIn]) -> list[Outcome]:
    """Fold events into alert groups, route new groups to incidents and write every event, all in one
    transaction. Retried on a deadlock (two batches touching the same keys in different orders)."""
    fast = _single_statement_routes(integration, events)
    for attempt in range(RETRIES_ON_DEADLOCK):
        try:
            if fast is not None:
                return _ingest_in_one_statement(integration, events, fast)
            with transaction.atomic():
                return _ingest(integration, events)
        except OperationalError as exc:
            sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
            if sqlstate in {"40P01", "40001"} and attempt + 1 < RETRIES_ON_DEADLOCK and not connection.in_atomic_block:
                log.warning("ingest retry after %s", sqlstate)
                continue
            raise
    raise AssertionError("unreachable")


def _rules(integration: Integration) -> list[RoutingRule]:
    rules = getattr(integration, "cached_rules", None)
    if rules is None:
        rules = list(integration.rules.select_related("severity_policy").order_by("position", "id"))
        integration.cached_rules = rules
    return rules


def _single_statement_routes(integration: Integration, events: list[AlertEventIn]) -> dict[str, Route] | None:
    """Routes for a request that needs exactly one statement, or None. That is the common shape of an alert
    storm: only triggers, each key once, and no group that could be linked to an incident (every route records
    only, or attaches without a service to attach to). Anything else takes the general path, which is also the
    only path on SQLite (the zero-dependency configuration): this one is PostgreSQL's jsonb_to_recordset."""
    if connection.vendor != "postgresql":
        return None
    if not events or any(e.action != EventAction.TRIGGER for e in events):
        return None
    if len({e.dedup_key for e in events}) != len(events):
        return None
    if any(e.service_slug for e in events):
        return None  # a slug needs a lookup (and may route to a service with an open incident)
    routes = {}
    for event in events:
        route = route_for(event, integration=integration, rules=_rules(integration), services={})
        if route.action == RouteAction.DECLARE or (route.action == RouteAction.ATTACH and route.service_id):
            return None
        routes[event.dedup_key] = route
    return routes


# The events travel as one JSON parameter (jsonb_to_recordset), so the statement text is the same for one event
# or a thousand: the driver parses it once per process and quotes one string instead of thousands.
# Its ON CONFLICT clause is UPSERT_CONFLICT's. Rows carry their integration: one statement may hold the events of
# several requests (see GroupCommit). Rows are upserted in (integration, key) order, so two statements touching
# the same keys lock them in the same order.
FAST_SQL = """
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS v (
        integration_id bigint, dedup_key varchar, summary varchar, source varchar, severity varchar, labels jsonb,
        link varchar, service_id bigint, first_seen_at timestamptz, occurred_at timestamptz, payload jsonb,
        audit_actor_id bigint, audit_actor_username varchar, audit_source varchar, audit_request_id varchar,
        audit_client_request_id varchar, audit_ip inet, audit_first_seen varchar)
), g AS (
    INSERT INTO alerting_alertgroup (integration_id, dedup_key, status, summary, source, severity, labels, link,
        service_id, incident_id, event_count, first_seen_at, last_seen_at, acknowledged_at, resolved_at)
    SELECT integration_id, dedup_key, 'triggered', summary, source, severity, labels, link, service_id, NULL, 1,
        first_seen_at, %s, NULL, NULL
    FROM v ORDER BY integration_id, dedup_key
    ON CONFLICT (integration_id, dedup_key) WHERE resolved_at IS NULL DO UPDATE SET
        last_seen_at = EXCLUDED.last_seen_at, event_count = alerting_alertgroup.event_count + 1,
        summary = EXCLUDED.summary, severity = EXCLUDED.severity, labels = EXCLUDED.labels
    RETURNING id, integration_id, dedup_key, (xmax = 0) AS inserted, incident_id
), e AS (
    INSERT INTO alerting_alertevent (integration_id, group_id, action, dedup_key, summary, severity, occurred_at,
        received_at, payload)
    SELECT v.integration_id, g.id, 'trigger', v.dedup_key, v.summary, v.severity, v.occurred_at, %s, v.payload
    FROM g JOIN v ON v.integration_id = g.integration_id AND v.dedup_key = g.dedup_key
), a AS (
    INSERT INTO {audit} (occurred_at, actor_id, actor_username, action, object_type, object_id, object_repr, field,
        incident_id, before, after, source, request_id, client_request_id, ip_address)
    SELECT %s, v.audit_actor_id, v.audit_actor_username, 'created', 'alerting.alertgroup', g.id::text,
        left(v.dedup_key, 60) || ' ({triggered})', '', NULL, NULL,
        jsonb_build_object('id', g.id, 'integration', v.integration_id, 'dedup_key', v.dedup_key, 'status', 'triggered',
            'summary', v.summary, 'source', v.source, 'severity', v.severity, 'labels', v.labels, 'link', v.link,
            'service', v.service_id, 'incident', NULL, 'first_seen_at', v.audit_first_seen, 'acknowledged_at', NULL,
            'resolved_at', NULL),
        v.audit_source, v.audit_request_id,
        v.audit_client_request_id, v.audit_ip
    FROM g JOIN v ON v.integration_id = g.integration_id AND v.dedup_key = g.dedup_key
    WHERE g.inserted
)
SELECT id, integration_id, dedup_key, inserted, incident_id FROM g
""".replace("{audit}", AuditRecord._meta.db_table).replace("{triggered}", str(GroupStatus.TRIGGERED.label))
# The audit record's `after` above is the group's audit snapshot (incidents.audit.recorder.snapshot: every field
# but the noise counters), built by the statement; tests compare it with the general path's record.


def _run_fast_statement(rows: list[dict]) -> dict[tuple[int, str], tuple]:
    """FAST_SQL for `rows` (each (integration, key) once); its result rows by (integration, key)."""
    now = timezone.now()
    # Prepared once per connection: planning this statement cost more than running it.
    with prepared_cursor() as cursor:
        cursor.execute(FAST_SQL, [json.dumps(rows), now, now, now])
        return {(row[1], row[2]): row for row in cursor.fetchall()}


class _Job:
    """One request's rows waiting for a statement."""

    __slots__ = ("rows", "keys", "result", "error", "done", "lead")

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.keys = {(row["integration_id"], row["dedup_key"]) for row in rows}
        self.result: dict | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.lead = False  # handed the lead: run the next statement (this job's included)


class GroupCommit:
    """Group commit for the single-statement ingests of one process's threads (gunicorn's gthread workers).

    While one thread's statement runs, requests arriving on the other threads queue; the next statement carries all
    of them, so N concurrent events cost one statement and one commit instead of N. Every request still answers only
    after the statement holding its events has committed: a 2xx keeps meaning "committed in PostgreSQL". A thread
    runs one statement (its own events first) and then hands the lead to the oldest waiting thread, so nobody waits
    behind an endless stream. A key appears once per statement (ON CONFLICT cannot touch a row twice): a request
    repeating a queued key waits for the next statement. An error fails every request of that statement (each
    retries or answers 503, as alone).

    Only for callers in autocommit: a caller inside a transaction must not have its events committed by another
    thread, nor others' events committed by its transaction; they run their statement themselves."""

    MAX_ROWS = 500

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._busy = False

    def run(self, rows: list[dict]) -> dict[tuple[int, str], tuple]:
        job = _Job(rows)
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
        if not lead:
            job.done.wait()
            if not job.lead:
                return self._outcome(job)
        self._lead()
        return self._outcome(job)

    @staticmethod
    def _outcome(job: _Job) -> dict[tuple[int, str], tuple]:
        if job.error is not None:
            raise job.error
        return job.result

    def _lead(self) -> None:
        with self._lock:
            batch, keys, size = [], set(), 0
            for job in self._queue:
                if job.keys & keys or (batch and size + len(job.rows) > self.MAX_ROWS):
                    continue
                batch.append(job)
                keys |= job.keys
                size += len(job.rows)
            self._queue = [job for job in self._queue if job not in batch]
        try:
            result = _run_fast_statement([row for job in batch for row in job.rows])
            for job in batch:
                job.result = {key: result[key] for key in job.keys}
        except BaseException as exc:  # every request of the statement gets it, and answers for itself
            for job in batch:
                job.error = exc
        finally:
            # Whatever happened, the lead passes on (or is released) and every waiter of this batch wakes.
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                else:
                    successor = None
                    self._busy = False
            for job in batch:
                job.done.set()
            if successor is not None:
                successor.done.set()


_group_commit = GroupCommit()


def _ingest_in_one_statement(integration, events, routes) -> list[Outcome]:
    """Upsert the groups and insert the events in one statement (data-modifying CTEs). It commits as one
    statement, so a 2xx still means every event is in PostgreSQL, at one round trip instead of four. The same
    statement writes the audit record of each group it opens, with this request's actor, request id and address
    (a statement may carry several requests' rows)."""
    context = BulkRecorder().context_columns()
    rows = []
    for e in events:
        first_seen = clamp_to_now(e.occurred_at)
        rows.append(
            {
                "integration_id": integration.pk,
                "dedup_key": e.dedup_key,
                "summary": e.summary,
                "source": e.source,
                "severity": e.severity,
                "labels": e.labels,
                "link": e.link,
                "service_id": routes[e.dedup_key].service_id,
                "first_seen_at": first_seen.isoformat(),
                "occurred_at": e.occurred_at.isoformat() if e.occurred_at else None,
                "payload": e.payload,
                "audit_first_seen": _json_time(first_seen),
                **context,
            }
        )
    if connection.in_atomic_block or not connection.get_autocommit():
        result = _run_fast_statement(rows)
    else:
        result = _group_commit.run(rows)
    outcomes = []
    linked = False
    for event in events:
        group_id, _integration_id, key, inserted, incident_id = result[(integration.pk, event.dedup_key)]
        linked = linked or incident_id is not None
        outcomes.append(Outcome(key, event.action, "opened" if inserted else "deduplicated", group_id))
    _fill_incident_references(dict(enumerate(outcomes)), linked)
    return outcomes


def _opened_group(integration, event: AlertEventIn, route: Route, *, pk=None, now=None) -> AlertGroup:
    """The group a trigger opens, as its row is inserted (unsaved: for its audit record)."""
    first_seen = clamp_to_now(event.occurred_at)
    return AlertGroup(
        pk=pk,
        integration_id=integration.pk,
        dedup_key=event.dedup_key,
        status=GroupStatus.TRIGGERED,
        summary=event.summary,
        source=event.source,
        severity=event.severity,
        labels=event.labels,
        link=event.link,
        service_id=route.service_id,
        first_seen_at=first_seen,
        last_seen_at=now or first_seen,
    )


_json_time = DjangoJSONEncoder().default  # a datetime as the audit trail's JSON stores it


def _waves(events: list[AlertEventIn]):
    """Split a batch so each key appears at most once per wave; waves are applied in order, so a batch that
    triggers and then resolves one key opens and then resolves its group."""
    wave, seen = [], set()
    for event in events:
        if event.dedup_key in seen:
            yield wave
            wave, seen = [], set()
        wave.append(event)
        seen.add(event.dedup_key)
    if wave:
        yield wave


def _ingest(integration: Integration, events: list[AlertEventIn]) -> list[Outcome]:
    now = timezone.now()
    rules = _rules(integration)
    slugs = {event.service_slug for event in events if event.service_slug}
    services = {s.slug: s for s in Service.objects.filter(slug__in=slugs)} if slugs else {}
    outcomes: dict[int, Outcome] = {}
    index_of = {id(event): i for i, event in enumerate(events)}
    event_rows = []
    audit = BulkRecorder()
    linked = False  # does any group of this request belong to an incident?
    for wave in _waves(events):
        triggers = sorted((e for e in wave if e.action == EventAction.TRIGGER), key=lambda e: e.dedup_key)
        acks = [e for e in wave if e.action == EventAction.ACKNOWLEDGE]
        resolves = [e for e in wave if e.action == EventAction.RESOLVE]
        groups_by_key: dict[str, tuple] = {}
        new_groups: list[tuple[AlertEventIn, int, Route]] = []
        if triggers:
            routes = {
                e.dedup_key: route_for(e, integration=integration, rules=rules, services=services) for e in triggers
            }
            trigger_by_key = {e.dedup_key: e for e in triggers}
            for row in _upsert_triggers(integration, triggers, routes, now):
                group_id, key, inserted, incident_id = row
                groups_by_key[key] = (group_id, incident_id)
                linked = linked or incident_id is not None
                event = trigger_by_key[key]
                result = "opened" if inserted else "deduplicated"
                outcomes[index_of[id(event)]] = Outcome(key, event.action, result, group_id)
                if inserted:
                    new_groups.append((event, group_id, routes[key]))
                    audit.created(_opened_group(integration, event, routes[key], pk=group_id, now=now))
        changed: list[tuple[AlertEventIn, int, int | None, str]] = []
        for action, batch in ((EventAction.ACKNOWLEDGE, acks), (EventAction.RESOLVE, resolves)):
            if not batch:
                continue
            found = {row[1]: row for row in _close_or_ack(integration, batch, action, now, audit)}
            for event in batch:
                row = found.get(event.dedup_key)
                if row is None:
                    outcomes[index_of[id(event)]] = Outcome(event.dedup_key, action, "no_open_group", None)
                    continue
                group_id, key, incident_id, summary = row
                groups_by_key[key] = (group_id, incident_id)
                linked = linked or incident_id is not None
                result = "resolved" if action == EventAction.RESOLVE else "acknowledged"
                outcomes[index_of[id(event)]] = Outcome(key, action, result, group_id)
                if incident_id:
                    changed.append((event, group_id, incident_id, summary))
        incident_refs = _link_new_groups(integration, new_groups, now, audit)
        linked = linked or bool(incident_refs)
        for event, _group_id, incident_id, summary in changed:
            incident_refs.setdefault(incident_id, []).append((event, summary))
        _record_on_timelines(integration, incident_refs)
        for event in wave:
            group = groups_by_key.get(event.dedup_key)
            event_rows.append(
                AlertEvent(
                    integration=integration,
                    group_id=group[0] if group else None,
                    action=event.action,
                    dedup_key=event.dedup_key,
                    summary=event.summary,
                    severity=event.severity if event.action == EventAction.TRIGGER else "",
                    occurred_at=event.occurred_at,
                    received_at=now,
                    payload=event.payload,
                )
            )
    AlertEvent.objects.bulk_create(event_rows)
    audit.flush()
    _fill_incident_references(outcomes, linked)
    return [outcomes[i] for i in range(len(events))]


UPSERT_COLUMNS = (
    "integration_id, dedup_key, status, summary, source, severity, labels, link,"
    " service_id, incident_id, event_count, first_seen_at, last_seen_at, acknowledged_at, resolved_at"
)
UPSERT_CONFLICT = (
    "ON CONFLICT (integration_id, dedup_key) WHERE resolved_at IS NULL DO UPDATE SET"
    " last_seen_at = EXCLUDED.last_seen_at, event_count = alerting_alertgroup.event_count + 1,"
    " summary = EXCLUDED.summary, severity = EXCLUDED.severity, labels = EXCLUDED.labels"
)
UPSERT_TAIL = UPSERT_CONFLICT + " RETURNING id, dedup_key, (xmax = 0) AS inserted, incident_id"
# SQLite (3.35+ for ON CONFLICT on a partial index with RETURNING) has no xmax to tell an insert from an update.
SQLITE_UPSERT_TAIL = UPSERT_CONFLICT + " RETURNING id, dedup_key, incident_id"


def _upsert_triggers(integration, triggers, routes, now):
    """Upsert one group per trigger; [(group id, key, inserted, incident id)]."""
    postgresql = connection.vendor == "postgresql"
    if postgresql:
        row_sql, stamp = "(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, NULL, 1, %s, %s, NULL, NULL)", None
        already_open = set()
    else:
        # SQLite serialises writers (IMMEDIATE transactions take the write lock at BEGIN, and _ingest runs in one),
        # so the keys open before the upsert are exactly the ones it updates. Raw SQL bypasses the fields: store
        # datetimes the way Django's SQLite backend does.
        row_sql = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 1, %s, %s, NULL, NULL)"
        stamp = connection.ops.adapt_datetimefield_value
        already_open = set(
            AlertGroup.objects.filter(
                integration=integration, dedup_key__in=[e.dedup_key for e in triggers], resolved_at__isnull=True
            ).values_list("dedup_key", flat=True)
        )
    params = []
    for event in triggers:
        first_seen, last_seen = clamp_to_now(event.occurred_at), now
        params += [
            integration.pk,
            event.dedup_key,
            GroupStatus.TRIGGERED,
            event.summary,
            event.source,
            event.severity,
            json.dumps(event.labels),
            event.link,
            routes[event.dedup_key].service_id,
            stamp(first_seen) if stamp else first_seen,
            stamp(last_seen) if stamp else last_seen,
        ]
    tail = UPSERT_TAIL if postgresql else SQLITE_UPSERT_TAIL
    # Only placeholders are interpolated; every value travels as a parameter.
    values = ", ".join([row_sql] * len(triggers))
    sql = f"INSERT INTO alerting_alertgroup ({UPSERT_COLUMNS}) VALUES {values} {tail}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if postgresql:
        return rows
    return [(group_id, key, key not in already_open, incident_id) for group_id, key, incident_id in rows]


GROUP_STATE_FIELDS = ("status", "acknowledged_at", "resolved_at")


def _close_or_ack(integration, batch, action, now, audit: BulkRecorder):
    """Resolve or acknowledge the open groups of the batch's keys; [(group id, key, incident id, summary)].
    Their state before (read under a row lock, in key order) and after goes to the audit records."""
    keys = sorted(e.dedup_key for e in batch)
    before = {
        group.pk: group
        for group in AlertGroup.objects.select_for_update()
        .filter(integration=integration, dedup_key__in=keys, resolved_at__isnull=True)
        .only("id", "dedup_key", "incident_id", *GROUP_STATE_FIELDS)
        .order_by("dedup_key")
    }
    stamp = now
    if connection.vendor == "postgresql":
        match, key_params = "= ANY(%s)", [keys]
    else:  # SQLite: no arrays, and datetimes stored the way Django's SQLite backend does
        match, key_params = f"IN ({', '.join(['%s'] * len(keys))})", keys
        now = connection.ops.adapt_datetimefield_value(now)
    if action == EventAction.RESOLVE:
        assignments = "status = %s, resolved_at = %s"
        params = [GroupStatus.RESOLVED, now]
    else:
        assignments = "status = %s, acknowledged_at = COALESCE(acknowledged_at, %s)"
        params = [GroupStatus.ACKNOWLEDGED, now]
    sql = (
        f"UPDATE alerting_alertgroup SET {assignments}, last_seen_at = %s, event_count = event_count + 1"  # noqa: S608
        f" WHERE integration_id = %s AND dedup_key {match} AND resolved_at IS NULL"
        " RETURNING id, dedup_key, incident_id, summary"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, now, integration.pk, *key_params])
        rows = cursor.fetchall()
    for group_id, _key, _incident_id, _summary in rows:
        group = before.get(group_id)
        if group is None:
            continue
        old = {name: getattr(group, name) for name in GROUP_STATE_FIELDS}
        if action == EventAction.RESOLVE:
            group.status, group.resolved_at = GroupStatus.RESOLVED, stamp
        else:
            group.status, group.acknowledged_at = GroupStatus.ACKNOWLEDGED, group.acknowledged_at or stamp
        audit.changed(group, before=old, after={name: getattr(group, name) for name in GROUP_STATE_FIELDS})
    return rows


def _link_new_groups(integration, new_groups, now, audit: BulkRecorder) -> dict[int, list]:
    """Attach new groups to their service's open incident, or declare one when the route says so. The service
    row is locked first, so two batches for one service cannot both declare an incident."""
    by_incident: dict[int, list] = defaultdict(list)
    by_service: dict[int | None, list] = defaultdict(list)
    for event, group_id, route in new_groups:
        if route.action != RouteAction.RECORD:
            by_service[route.service_id].append((event, group_id, route))
    # Without a service there is no open incident to attach to: only a "declare" route has work to do.
    for service_id in [sid for sid, items in by_service.items() if sid is None]:
        if not any(item[2].action == RouteAction.DECLARE for item in by_service[service_id]):
            del by_service[service_id]
    if not by_service:
        return by_incident
    policies = {p.level: p for p in SeverityPolicy.objects.all()}
    for service_id in sorted(by_service, key=lambda sid: sid or 0):
        items = by_service[service_id]
        service = None
        incident = None
        if service_id is not None:
            service = Service.objects.select_for_update().filter(pk=service_id).first()
            incident = (
                Incident.objects.active().filter(services=service_id).order_by("-declared_at", "-id").first()
                if service
                else None
            )
        declare = [item for item in items if item[2].action == RouteAction.DECLARE]
        if incident is None and declare and should_auto_declare(integration, service, now):
            event, _, _ = min(declare, key=lambda item: _policy_rank(policies, item[2].policy_level))
            level = min((item[2].policy_level for item in declare), key=lambda lv: _policy_rank(policies, lv))
            policy = policies.get(level) or policies["P1"]
            # An alert firing for over a year (or a sender's clock years behind) still declares: detection is clamped
            # to the oldest time a declaration accepts, a minute inside it as declare_incident reads the clock again.
            oldest = now - incident_services.MAX_DETECTION_AGE + timedelta(minutes=1)
            detected = max(min(clamp_to_now(item[0].occurred_at) for item in declare), oldest)
            incident = incident_services.declare_incident(
                title=event.summary[:200] or f"Alert from {integration.name}",
                severity=policy,
                by=None,
                summary=f"Declared automatically from an alert received by the {integration.name} integration.",
                services=[service] if service else [],
                detection_source=DetectionSource.MONITORING_ALERT,
                detected_at=detected,
            )
        if incident is None:
            continue
        group_ids = [group_id for _, group_id, _ in items]
        AlertGroup.objects.filter(pk__in=group_ids).update(incident=incident)
        for event, group_id, _ in items:
            by_incident[incident.pk].append((event, event.summary))
            group = AlertGroup(pk=group_id, dedup_key=event.dedup_key, status=GroupStatus.TRIGGERED)
            audit.changed(group, before={"incident": None}, after={"incident": incident.pk}, incident_id=incident.pk)
    return by_incident


def _policy_rank(policies, level):
    policy = policies.get(level)
    return policy.rank if policy else 99


def _record_on_timelines(integration, by_incident: dict[int, list]) -> None:
    """One timeline entry per incident and request, listing its alerts (a 100-alert webhook is one entry)."""
    for incident_id, items in by_incident.items():
        alerts = [
            {
                "action": str(event.action),
                "severity": event.severity,
                "summary": summary or event.summary,
                "link": event.link,
                "dedup_key": event.dedup_key,
            }
            for event, summary in items
        ]
        timeline.record(timeline.alert_attached(Incident(pk=incident_id), integration=integration, alerts=alerts))


def _fill_incident_references(outcomes: dict[int, Outcome], linked: bool) -> None:
    if not linked:
        return  # no group of this request is linked to an incident: nothing to look up
    group_ids = {o.group_id for o in outcomes.values() if o.group_id}
    if not group_ids:
        return
    numbers = dict(
        AlertGroup.objects.filter(pk__in=group_ids, incident__isnull=False).values_list("pk", "incident__number")
    )
    for outcome in outcomes.values():
        number = numbers.get(outcome.group_id)
        outcome.incident = f"INC-{number}" if number else None


# --- Change events ------------------------------------------------------------------------------------------------


@transaction.atomic
def record_change_events(*, integration: Integration | None, changes: list[ChangeIn]) -> list[ChangeEvent]:
    """Unknown service slugs are refused (ValueError naming the field) rather than recorded unattached: a change
    nobody can find next to an incident is worth nothing."""
    slugs = {c.service_slug for c in changes if c.service_slug}
    services = {s.slug: s for s in Service.objects.filter(slug__in=slugs)} if slugs else {}
    rows = []
    for index, change in enumerate(changes):
        service = services.get(change.service_slug) if change.service_slug else None
        if change.service_slug and service is None:
            raise UnknownService(change.service_slug, index=index if len(changes) > 1 else None)
        if service is None and integration is not None and integration.default_service_id:
            service = integration.default_service
        rows.append(
            ChangeEvent(
                integration=integration,
                service=service,
                kind=change.kind,
                summary=change.summary,
                description=change.description,
                source=change.source,
                link=change.link,
                occurred_at=clamp_to_now(change.occurred_at),
                details=change.details,
            )
        )
    created = ChangeEvent.objects.bulk_create(rows)
    audit = BulkRecorder()
    for change_event in created:
        audit.created(change_event)
    audit.flush()
    return created


class UnknownService(Exception):
    def __init__(self, slug: str, *, index: int | None):
        self.slug = slug
        self.field = f"changes[{index}].service" if index is not None else "service"
        super().__init__(f"No service with slug {slug!r}.")


# --- API tokens --------------------------------------------------------------------------------------------------


def check_api_token_expiry(expires_at: datetime | None, *, now: datetime | None = None) -> datetime:
    """The expiry a new token gets: the one asked for, in the future and at most API_TOKEN_MAX_LIFETIME_DAYS
    away, or that maximum when none is asked for."""
    now = now or timezone.now()
    max_days = conf.get("API_TOKEN_MAX_LIFETIME_DAYS")
    latest = now + timedelta(days=max_days)
    if expires_at is None:
        return latest
    if expires_at <= now:
        raise DomainError("The expiry must be in the future.", field="expires_at")
    if expires_at > latest:
        raise DomainError(
            f"A token lives at most {max_days} days: choose an expiry on or before {format_moment(latest)}.",
            field="expires_at",
        )
    return expires_at


@transaction.atomic
def create_api_token(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal token for `user`, who is also the one asking: nobody creates a token for someone else,
    and the owner never changes afterwards. Every token expires, at most API_TOKEN_MAX_LIFETIME_DAYS from now
    (also the expiry when none is given). Returns the token and its key, which is shown only this once."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Name the token after what will use it.", field="name")
    now = timezone.now()
    expires_at = check_api_token_expiry(expires_at, now=now)
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        key_prefix=key[:12],
        key_hash=hash_secret(key),
        created_at=now,
        expires_at=expires_at,
    )
    return token, key


@transaction.atomic
def rename_api_token(*, token: ApiToken, by, name: str) -> ApiToken:
    """Only the owner renames a token; the name is the only thing that changes after creation."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if by is None or token.user_id != by.pk:
        raise PermissionDenied("Only the token's owner can change it; staff may only revoke it.")
    name = (name or "").strip()
    if not name:
        raise DomainError("Name the token after what will use it.", field="name")
    if token.name != name[:100]:
        token.name = name[:100]
        token.save(update_fields=["name"])
    return token


@transaction.atomic
def revoke_api_token(*, token: ApiToken, by, using: ApiToken | None = None) -> ApiToken:
    """The owner or staff (incident managers, admins) revoke a token. A request authenticated by a token
    (`using`) may revoke only that token itself: a token never acts on its siblings."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if using is not None and using.pk != token.pk:
        raise PermissionDenied("An API token can revoke only itself; manage other tokens from a signed-in browser.")
    if by is not None and token.user_id != by.pk and not access.is_manager(by):
        raise PermissionDenied("Only the token's owner or staff can revoke it.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
