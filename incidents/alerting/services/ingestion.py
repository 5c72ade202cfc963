"""Ingesting normalised alert events: folding them into alert groups, routing new groups to incidents (attach or
declare), and writing every event.

Ingestion runs in one transaction per request: a 2xx answer means every event of the request is committed.
Deduplication is the partial unique index on (integration, dedup_key) WHERE resolved_at IS NULL, used by
INSERT ... ON CONFLICT, so concurrent deliveries of one key fold into one group without check-then-insert.
A request that is an alert storm's common shape takes one statement instead (group_commit).

Groups are written with raw SQL and QuerySet.update(), which the audit signals do not see: their audit records
(group opened, linked to an incident, acknowledged, resolved) are written here through the audit trail's
BulkRecorder, in the same transaction (on the single-statement path, by the same statement).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from incidents import timeline
from incidents.audit.recorder import BulkRecorder
from incidents.models import DetectionSource, Incident, Service, SeverityPolicy
from incidents.services import status as status_services
from incidents.services.rules import MAX_DETECTION_AGE

from ..models import AlertEvent, AlertGroup, EventAction, GroupStatus, Integration, RouteAction
from ..parsers import AlertEventIn, clamp_to_now
from . import group_commit
from .routing import Route, route_for, rules_of, should_auto_declare

log = logging.getLogger(__name__)
RETRIES_ON_DEADLOCK = 3


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
        route = route_for(event, integration=integration, rules=rules_of(integration), services={})
        if route.action == RouteAction.DECLARE or (route.action == RouteAction.ATTACH and route.service_id):
            return None
        routes[event.dedup_key] = route
    return routes


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
        result = group_commit.run_fast_statement(rows)
    else:
        result = group_commit.shared.run(rows)
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
    rules = rules_of(integration)
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
    """Attach new groups to their service's open incident, or declare one when the route says so.

    Only a declaration needs a lock: the rows of the services that have no open incident and a "declare" route are
    locked (FOR NO KEY UPDATE: rows that merely reference the service, such as new alert groups, do not wait), all
    at once in id order, and looked at again, so two batches for one service cannot both declare an incident.
    Attaching to an open incident locks nothing (closing an incident never took the service lock either).
    All before the first declaration: a transaction that holds the incident-number counter (a declaration takes it
    until commit) never waits for a service row. In an alert storm on one shared database, locking each service as
    its turn came made declarations queue behind chains of those locks (bench/cluster.py: a P0 declared by hand
    mid-storm took 12 s)."""
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
    service_ids = sorted(sid for sid in by_service if sid is not None)
    open_incidents = _open_incidents(service_ids)
    may_declare = [
        sid
        for sid in service_ids
        if sid not in open_incidents and any(item[2].action == RouteAction.DECLARE for item in by_service[sid])
    ]
    services = {service.pk: service for service in Service.objects.filter(pk__in=service_ids)}
    if may_declare:
        services.update(
            (service.pk, service)
            for service in Service.objects.select_for_update(no_key=True).filter(pk__in=may_declare).order_by("pk")
        )
        open_incidents.update(_open_incidents(may_declare))  # declared by a batch that committed meanwhile
    policies = {p.level: p for p in SeverityPolicy.objects.all()}
    for service_id in sorted(by_service, key=lambda sid: sid or 0):
        items = by_service[service_id]
        service = services.get(service_id)
        incident = open_incidents.get(service_id) if service is not None else None
        declare = [item for item in items if item[2].action == RouteAction.DECLARE]
        if incident is None and declare and should_auto_declare(integration, service, now):
            incident = _declare_for(integration, service, declare, policies, now)
        if incident is None:
            continue
        group_ids = [group_id for _, group_id, _ in items]
        AlertGroup.objects.filter(pk__in=group_ids).update(incident=incident)
        for event, group_id, _ in items:
            by_incident[incident.pk].append((event, event.summary))
            group = AlertGroup(pk=group_id, dedup_key=event.dedup_key, status=GroupStatus.TRIGGERED)
            audit.changed(group, before={"incident": None}, after={"incident": incident.pk}, incident_id=incident.pk)
    return by_incident


def _open_incidents(service_ids: list[int]) -> dict[int, Incident]:
    """Each service's open incident (the latest declared, if several), in one query."""
    found: dict[int, Incident] = {}
    if not service_ids:
        return found
    links = (
        Incident.services.through.objects.filter(service_id__in=service_ids, incident__in=Incident.objects.active())
        .select_related("incident")
        .order_by("-incident__declared_at", "-incident__id")
    )
    for link in links:
        found.setdefault(link.service_id, link.incident)
    return found


def _declare_for(integration, service, declare, policies, now) -> Incident:
    event, _, _ = min(declare, key=lambda item: _policy_rank(policies, item[2].policy_level))
    level = min((item[2].policy_level for item in declare), key=lambda lv: _policy_rank(policies, lv))
    policy = policies.get(level) or policies["P1"]
    # An alert firing for over a year (or a sender's clock years behind) still declares: detection is clamped
    # to the oldest time a declaration accepts, a minute inside it as declare_incident reads the clock again.
    oldest = now - MAX_DETECTION_AGE + timedelta(minutes=1)
    detected = max(min(clamp_to_now(item[0].occurred_at) for item in declare), oldest)
    return status_services.declare_incident(
        title=event.summary[:200] or f"Alert from {integration.name}",
        severity=policy,
        by=None,
        summary=f"Declared automatically from an alert received by the {integration.name} integration.",
        services=[service] if service else [],
        detection_source=DetectionSource.MONITORING_ALERT,
        detected_at=detected,
    )


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
