"""One thin parser per inbound format, each turning a decoded JSON body into normalised events.

Parsers only read and validate; they never touch the database. A payload they cannot use raises PayloadError,
naming the field at fault, and the view answers 400 with it (and nothing is written).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils import timezone

from .models import ChangeKind, EventAction, Severity

MAX_EVENTS_PER_REQUEST = 1000
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024


class PayloadError(Exception):
    def __init__(self, message: str, *, field: str | None = None, errors: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or [message]


@dataclass
class AlertEventIn:
    """A normalised alert event, whatever format it came in."""

    action: str
    dedup_key: str
    summary: str = ""
    severity: str = Severity.ERROR
    source: str = ""
    labels: dict = field(default_factory=dict)
    link: str = ""
    occurred_at: datetime | None = None
    service_slug: str = ""
    payload: dict = field(default_factory=dict)


@dataclass
class ChangeIn:
    summary: str
    kind: str = ChangeKind.DEPLOY
    service_slug: str = ""
    description: str = ""
    link: str = ""
    source: str = ""
    occurred_at: datetime | None = None
    details: dict = field(default_factory=dict)


SEVERITY_WORDS = {
    Severity.CRITICAL: {"critical", "crit", "fatal", "page", "p0", "p1", "sev1", "disaster", "emergency", "alert"},
    Severity.ERROR: {"error", "err", "high", "major", "p2", "sev2"},
    Severity.WARNING: {"warning", "warn", "medium", "minor", "average", "p3", "sev3"},
    Severity.INFO: {"info", "informational", "low", "none", "debug", "notice", "ok", "p4", "p5", "sev4"},
}


def normalize_severity(value, default: str = Severity.ERROR) -> str:
    text = str(value or "").strip().lower()
    for severity, words in SEVERITY_WORDS.items():
        if text in words:
            return severity
    return default


def parse_time(value, *, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(f"{field} is not a valid Unix timestamp.", field=field)
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be an RFC 3339 timestamp string.", field=field)
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # RFC 3339 allows nanoseconds (Alertmanager, Grafana send them); Python keeps microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}" if digits else head + rest
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{field} is not an RFC 3339 timestamp: {value[:40]!r}.", field=field)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        # In UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts.
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"{field} is out of range.", field=field)
    if moment.year < 1971:  # Go's zero time ("0001-01-01T00:00:00Z") means "not set"
        return None
    return moment


def _obj(value, *, field: str, required: bool = True) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{field} must be a JSON object.", field=field)
    return value


def _str(value, *, field: str, required: bool = False, max_length: int | None = None) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PayloadError(f"{field} must be a string.", field=field)
    value = value.strip()
    if required and not value:
        raise PayloadError(f"{field} is missing or blank.", field=field)
    if max_length is not None and len(value) > max_length:
        raise PayloadError(f"{field} is longer than {max_length} characters.", field=field)
    return value


def _labels(value, *, field: str) -> dict[str, str]:
    labels = _obj(value, field=field, required=False)
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in labels.items()}


def _url(value: str) -> str:
    return value if value.startswith(("http://", "https://")) and len(value) <= 1000 else ""


def _fingerprint(labels: dict) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:32]


def _alerts_list(body: dict) -> list:
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts must be a list of alerts.", field="alerts")
    if len(alerts) > MAX_EVENTS_PER_REQUEST:
        raise PayloadError(f"At most {MAX_EVENTS_PER_REQUEST} alerts per request.", field="alerts")
    return alerts


# --- Prometheus Alertmanager webhook (version 4) and Grafana (same envelope plus Grafana fields) ----------------


def parse_alertmanager(body, headers=None) -> list[AlertEventIn]:
    """Alertmanager's webhook_config payload: {version: "4", groupKey, status, receiver, groupLabels, commonLabels,
    commonAnnotations, externalURL, alerts: [{status, labels, annotations, startsAt, endsAt, generatorURL,
    fingerprint}]}. Each alert is an event keyed by its fingerprint; its own status (firing/resolved) decides."""
    body = _obj(body, field="body")
    version = body.get("version")
    if version is not None and str(version) not in {"4", "1"}:
        raise PayloadError(f"Unsupported webhook version {version!r}; version 4 is expected.", field="version")
    common_labels = _labels(body.get("commonLabels"), field="commonLabels")
    common_annotations = _labels(body.get("commonAnnotations"), field="commonAnnotations")
    events = []
    for index, alert in enumerate(_alerts_list(body)):
        where = f"alerts[{index}]"
        alert = _obj(alert, field=where)
        status = _str(alert.get("status"), field=f"{where}.status", required=True)
        if status not in {"firing", "resolved"}:
            raise PayloadError(f"{where}.status must be firing or resolved, not {status!r}.", field=f"{where}.status")
        labels = {**common_labels, **_labels(alert.get("labels"), field=f"{where}.labels")}
        annotations = {**common_annotations, **_labels(alert.get("annotations"), field=f"{where}.annotations")}
        fingerprint = _str(alert.get("fingerprint"), field=f"{where}.fingerprint", max_length=MAX_DEDUP_KEY)
        summary = annotations.get("summary") or annotations.get("description") or labels.get("alertname") or "Alert"
        resolved = status == "resolved"
        occurred = parse_time(alert.get("endsAt" if resolved else "startsAt"), field=f"{where}.startsAt")
        link = _url(str(alert.get("generatorURL") or alert.get("panelURL") or alert.get("dashboardURL") or ""))
        events.append(
            AlertEventIn(
                action=EventAction.RESOLVE if resolved else EventAction.TRIGGER,
                dedup_key=fingerprint or _fingerprint(labels),
                summary=str(summary)[:MAX_SUMMARY],
                severity=normalize_severity(labels.get("severity"), default=Severity.ERROR),
                source=str(labels.get("instance") or labels.get("job") or body.get("receiver") or "")[:255],
                labels=labels,
                link=link,
                occurred_at=occurred,
                service_slug=str(labels.get("service", "")),
                payload=alert,
            )
        )
    return events


parse_grafana = parse_alertmanager  # Grafana's webhook keeps Alertmanager's envelope (version "1") and adds fields


# --- Sentry integration platform webhooks -------------------------------------------------------------------------

SENTRY_RESOURCES = {"issue", "event_alert", "metric_alert", "installation", "error", "comment", "seer"}


def parse_sentry(body, headers) -> list[AlertEventIn]:
    """Sentry-Hook-Resource names the payload: `issue` (action created/resolved/assigned/ignored/archived/
    unresolved), `event_alert` (an issue alert rule fired: action triggered) and `metric_alert` (action
    critical/warning/resolved). Issue events and issue alerts share the issue id as the dedup key, so a later
    `issue.resolved` resolves the group an `event_alert` opened. Other resources are acknowledged and ignored."""
    body = _obj(body, field="body")
    resource = (headers.get("Sentry-Hook-Resource") or "").strip()
    if not resource:
        raise PayloadError("The Sentry-Hook-Resource header is missing.", field="Sentry-Hook-Resource")
    if resource not in SENTRY_RESOURCES:
        raise PayloadError(f"Unknown Sentry-Hook-Resource {resource!r}.", field="Sentry-Hook-Resource")
    action = _str(body.get("action"), field="action", required=True)
    data = _obj(body.get("data"), field="data")
    if resource == "issue":
        issue = _obj(data.get("issue"), field="data.issue")
        issue_id = _str(str(issue.get("id") or ""), field="data.issue.id", required=True, max_length=200)
        mapping = {
            "created": EventAction.TRIGGER,
            "unresolved": EventAction.TRIGGER,
            "resolved": EventAction.RESOLVE,
            "ignored": EventAction.RESOLVE,
            "archived": EventAction.RESOLVE,
            "assigned": EventAction.ACKNOWLEDGE,
        }
        if action not in mapping:
            raise PayloadError(f"Unknown issue action {action!r}.", field="action")
        project = issue.get("project") if isinstance(issue.get("project"), dict) else {}
        return [
            AlertEventIn(
                action=mapping[action],
                dedup_key=f"sentry-issue-{issue_id}",
                summary=str(issue.get("title") or issue.get("culprit") or f"Sentry issue {issue_id}")[:MAX_SUMMARY],
                severity=normalize_severity(issue.get("level"), default=Severity.ERROR),
                source=str(project.get("slug") or "sentry")[:255],
                labels={"project": str(project.get("slug", "")), "level": str(issue.get("level", ""))},
                link=_url(str(issue.get("web_url") or issue.get("permalink") or "")),
                occurred_at=parse_time(issue.get("lastSeen") or issue.get("firstSeen"), field="data.issue.lastSeen"),
                service_slug=str(project.get("slug", "")),
                payload=issue,
            )
        ]
    if resource == "event_alert":
        if action != "triggered":
            raise PayloadError(f"Unknown event_alert action {action!r}.", field="action")
        event = _obj(data.get("event"), field="data.event")
        issue_id = str(event.get("issue_id") or event.get("event_id") or "")
        if not issue_id or len(issue_id) > 200:
            raise PayloadError("data.event.issue_id is missing or too long.", field="data.event.issue_id")
        tags = event.get("tags") if isinstance(event.get("tags"), list) else []
        labels = {str(t[0]): str(t[1]) for t in tags if isinstance(t, list | tuple) and len(t) == 2}
        labels["rule"] = str(data.get("triggered_rule", ""))
        return [
            AlertEventIn(
                action=EventAction.TRIGGER,
                dedup_key=f"sentry-issue-{issue_id}",
                summary=str(event.get("title") or data.get("triggered_rule") or "Sentry issue alert")[:MAX_SUMMARY],
                severity=normalize_severity(event.get("level"), default=Severity.ERROR),
                source=str(event.get("culprit") or "sentry")[:255],
                labels=labels,
                link=_url(str(event.get("web_url") or "")),
                occurred_at=parse_time(event.get("datetime"), field="data.event.datetime"),
                service_slug=labels.get("service", ""),
                payload=event,
            )
        ]
    if resource == "metric_alert":
        mapping = {"critical": EventAction.TRIGGER, "warning": EventAction.TRIGGER, "resolved": EventAction.RESOLVE}
        if action not in mapping:
            raise PayloadError(f"Unknown metric_alert action {action!r}.", field="action")
        metric = _obj(data.get("metric_alert"), field="data.metric_alert")
        rule = metric.get("alert_rule") if isinstance(metric.get("alert_rule"), dict) else {}
        alert_id = str(metric.get("id") or metric.get("identifier") or rule.get("id") or "")
        if not alert_id or len(alert_id) > 200:
            raise PayloadError("data.metric_alert.id is missing or too long.", field="data.metric_alert.id")
        title = data.get("description_title") or metric.get("title") or rule.get("name") or "Sentry metric alert"
        projects = rule.get("projects") if isinstance(rule.get("projects"), list) else []
        return [
            AlertEventIn(
                action=mapping[action],
                dedup_key=f"sentry-metric-{alert_id}",
                summary=str(title)[:MAX_SUMMARY],
                severity=Severity.CRITICAL if action == "critical" else Severity.WARNING,
                source="sentry",
                labels={"alert_rule": str(rule.get("name", "")), "project": str(projects[0]) if projects else ""},
                link=_url(str(data.get("web_url") or "")),
                occurred_at=parse_time(metric.get("date_started"), field="data.metric_alert.date_started"),
                service_slug=str(projects[0]) if projects else "",
                payload={"metric_alert": metric, "description_text": data.get("description_text", "")},
            )
        ]
    return []  # installation, comment, error, seer: nothing to alert on


# --- PagerDuty Events API v2 ----------------------------------------------------------------------------------------

PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}


def parse_pagerduty(body, headers=None) -> list[AlertEventIn]:
    """Events API v2: {routing_key, event_action: trigger|acknowledge|resolve, dedup_key, payload: {summary, source,
    severity, timestamp, component, group, class, custom_details}, client, client_url, links, images}.
    Collects every problem, as PagerDuty does, and raises them together."""
    if not isinstance(body, dict):
        raise PayloadError("Event object is invalid", errors=["Event must be a JSON object"], field="body")
    errors: list[str] = []
    action = body.get("event_action")
    if not isinstance(action, str):  # a list or object is as invalid as a wrong word (and unhashable)
        action = None
    if action not in {"trigger", "acknowledge", "resolve"}:
        errors.append("'event_action' is missing or invalid (must be trigger, acknowledge or resolve)")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
        dedup_key = None
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY:
        errors.append(f"'dedup_key' is longer than {MAX_DEDUP_KEY} characters")
    if action in {"acknowledge", "resolve"} and not dedup_key:
        errors.append(f"'dedup_key' is required for event_action {action}")
    payload = body.get("payload")
    summary = source = ""
    severity = Severity.ERROR
    occurred = None
    if action == "trigger" or payload is not None:
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
            payload = {}
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > MAX_SUMMARY:
                errors.append(f"'payload.summary' is longer than {MAX_SUMMARY} characters")
            source = payload.get("source")
            if action == "trigger" and (not isinstance(source, str) or not source.strip()):
                errors.append("'payload.source' is missing or blank")
            severity = payload.get("severity")
            if not isinstance(severity, str):
                severity = None
            if action == "trigger" and severity not in PAGERDUTY_SEVERITIES:
                errors.append("'payload.severity' is missing or invalid (must be critical, error, warning or info)")
            try:
                occurred = parse_time(payload.get("timestamp"), field="payload.timestamp")
            except PayloadError as exc:
                errors.append(f"'payload.timestamp' is invalid: {exc.message}")
            if payload.get("custom_details") is not None and not isinstance(payload.get("custom_details"), dict | str):
                errors.append("'payload.custom_details' must be an object")
    if errors:
        raise PayloadError("Event object is invalid", errors=errors, field=_first_field(errors))
    payload = payload if isinstance(payload, dict) else {}
    labels = {}
    for name in ("component", "group", "class"):
        if isinstance(payload.get(name), str):
            labels[name] = payload[name]
    details = payload.get("custom_details")
    if isinstance(details, dict):
        labels.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in details.items()})
    links = body.get("links") if isinstance(body.get("links"), list) else []
    link = _url(str(body.get("client_url") or (links[0].get("href") if links and isinstance(links[0], dict) else "")))
    return [
        AlertEventIn(
            action=action,
            dedup_key=dedup_key or uuid.uuid4().hex,
            summary=(summary or "").strip()[:MAX_SUMMARY] if isinstance(summary, str) else "",
            severity=severity if severity in PAGERDUTY_SEVERITIES else Severity.ERROR,
            source=(source or "").strip()[:255] if isinstance(source, str) else "",
            labels=labels,
            link=link,
            occurred_at=occurred,
            service_slug=str(labels.get("service", "")),
            payload={k: v for k, v in body.items() if k != "routing_key"},
        )
    ]


def _first_field(errors: list[str]) -> str | None:
    first = errors[0]
    if "'" in first:
        return first.split("'")[1]
    return None


# --- Generic JSON events ------------------------------------------------------------------------------------------


def _generic_one(item, where: str) -> AlertEventIn:
    item = _obj(item, field=where)
    action = item.get("action", "trigger")
    if action not in EventAction.values:
        raise PayloadError(
            f"{where}.action must be trigger, acknowledge or resolve, not {str(action)[:40]!r}.",
            field=f"{where}.action",
        )
    dedup_key = _str(item.get("dedup_key"), field=f"{where}.dedup_key", max_length=MAX_DEDUP_KEY)
    if action != EventAction.TRIGGER and not dedup_key:
        raise PayloadError(f"{where}.dedup_key is required to {action}.", field=f"{where}.dedup_key")
    summary = _str(
        item.get("summary"), field=f"{where}.summary", required=action == EventAction.TRIGGER, max_length=MAX_SUMMARY
    )
    severity = item.get("severity", Severity.ERROR)
    if severity not in Severity.values:
        raise PayloadError(f"{where}.severity must be critical, error, warning or info.", field=f"{where}.severity")
    labels = _labels(item.get("labels"), field=f"{where}.labels")
    return AlertEventIn(
        action=action,
        dedup_key=dedup_key or uuid.uuid4().hex,
        summary=summary,
        severity=severity,
        source=_str(item.get("source"), field=f"{where}.source", max_length=255),
        labels=labels,
        link=_url(_str(item.get("link"), field=f"{where}.link", max_length=1000)),
        occurred_at=parse_time(item.get("occurred_at"), field=f"{where}.occurred_at"),
        service_slug=_str(item.get("service"), field=f"{where}.service", max_length=120) or labels.get("service", ""),
        payload=item,
    )


def parse_generic(body, headers=None) -> list[AlertEventIn]:
    """One event object, or {"events": [...]}. The schema is GENERIC_EVENT in incidents/api/schema.py, published
    at /api/schema/ and /api/docs/."""
    body = _obj(body, field="body")
    if "events" in body:
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise PayloadError("events must be a non-empty list of events.", field="events")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            raise PayloadError(f"At most {MAX_EVENTS_PER_REQUEST} events per request.", field="events")
        return [_generic_one(item, f"events[{i}]") for i, item in enumerate(items)]
    return [_generic_one(body, "event")]


# --- Change events ------------------------------------------------------------------------------------------------


def _change_one(item, where: str) -> ChangeIn:
    item = _obj(item, field=where)
    kind = item.get("kind", ChangeKind.DEPLOY)
    if kind not in ChangeKind.values:
        allowed = ", ".join(ChangeKind.values)
        raise PayloadError(f"{where}.kind must be one of: {allowed}.", field=f"{where}.kind")
    details = item.get("details", {})
    if not isinstance(details, dict):
        raise PayloadError(f"{where}.details must be a JSON object.", field=f"{where}.details")
    return ChangeIn(
        summary=_str(item.get("summary"), field=f"{where}.summary", required=True, max_length=MAX_SUMMARY),
        kind=kind,
        service_slug=_str(item.get("service"), field=f"{where}.service", max_length=120),
        description=_str(item.get("description"), field=f"{where}.description", max_length=10_000),
        link=_url(_str(item.get("link"), field=f"{where}.link", max_length=1000)),
        source=_str(item.get("source"), field=f"{where}.source", max_length=255),
        occurred_at=parse_time(item.get("occurred_at"), field=f"{where}.occurred_at"),
        details=details,
    )


def parse_changes(body, headers=None) -> list[ChangeIn]:
    body = _obj(body, field="body")
    if "changes" in body:
        items = body["changes"]
        if not isinstance(items, list) or not items:
            raise PayloadError("changes must be a non-empty list of change events.", field="changes")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            raise PayloadError(f"At most {MAX_EVENTS_PER_REQUEST} changes per request.", field="changes")
        return [_change_one(item, f"changes[{i}]") for i, item in enumerate(items)]
    return [_change_one(body, "change")]


def clamp_to_now(moment: datetime | None) -> datetime:
    """Senders' clocks drift; an event 'from the future' is recorded as now."""
    now = timezone.now()
    return now if moment is None or moment > now else moment
