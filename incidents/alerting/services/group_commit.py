"""Group commit of single-statement ingests: the statement that upserts a storm's groups, inserts its events and
writes the audit records of the groups it opens, and the per-process queue that lets concurrent requests share it."""

from __future__ import annotations

import json
import threading

from django.utils import timezone

from incidentportal.db import prepared_cursor
from incidents.audit.models import AuditRecord

from ..models import GroupStatus

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


def run_fast_statement(rows: list[dict]) -> dict[tuple[int, str], tuple]:
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
            result = run_fast_statement([row for job in batch for row in job.rows])
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


shared = GroupCommit()  # one per process
