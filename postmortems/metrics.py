"""Incident metrics for a period: incidents per week by severity, MTTA / MTTR / time to detect / time to
mitigate per severity and per service, response-target compliance, and action-item completion.

Every number is a SQL aggregate over the incidents the user may see (Incident.objects.visible_to), so the page
costs the same handful of queries for 100 incidents or 100,000. Definitions match the Incident properties:
  time to detect      = declared - detected       time to acknowledge (MTTA) = acknowledged - declared
  time to mitigate    = mitigated - detected      time to resolve (MTTR)     = resolved - detected
An average ignores incidents that have not reached that point yet (e.g. MTTR over resolved incidents only).
Response-target compliance = acknowledged by response_due_at / (acknowledged + unacknowledged past their target):
an unacknowledged incident still inside its target is not counted either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from incidents.models import Incident, SeverityPolicy

from .models import ActionItem, ActionItemStatus

MAX_PERIOD_DAYS = 3 * 366
DEFAULT_PERIOD_DAYS = 90


def _span(end, start) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


# (name, end, start, the column that must be set for the span to exist)
SPANS = [
    ("mtta", "acknowledged_at", "declared_at", "acknowledged_at"),
    ("mttr", "resolved_at", "detected_at", "resolved_at"),
    ("ttd", "declared_at", "detected_at", "declared_at"),
    ("ttm", "mitigated_at", "detected_at", "mitigated_at"),
]
COUNTS = ("count", "ack_in_target", "target_measured")


def _aggregates(now: datetime) -> dict:
    """Sums and counts rather than averages, so the all-severities row is added up in Python instead of
    costing another scan. No DISTINCT: within a group (a severity, or one service of the M2M join) each
    incident appears once, and COUNT(DISTINCT) would sort every group."""
    aggregates = {
        "count": Count("id"),
        "ack_in_target": Count(
            "id", filter=Q(acknowledged_at__isnull=False, acknowledged_at__lte=F("response_due_at"))
        ),
        "target_measured": Count(
            "id",
            filter=Q(response_due_at__isnull=False) & (Q(acknowledged_at__isnull=False) | Q(response_due_at__lt=now)),
        ),
    }
    for name, end, start, required in SPANS:
        aggregates[f"{name}_sum"] = Sum(_span(end, start))
        aggregates[f"{name}_n"] = Count(required)
    return aggregates


@dataclass
class Row:
    """One line of the per-severity or per-service table."""

    key: str
    label: str
    count: int = 0
    mtta: timedelta | None = None
    mttr: timedelta | None = None
    ttd: timedelta | None = None
    ttm: timedelta | None = None
    ack_in_target: int = 0
    target_measured: int = 0
    css_class: str = ""
    sums: dict = field(default_factory=dict)

    @property
    def compliance(self) -> float | None:
        if not self.target_measured:
            return None
        return round(100.0 * self.ack_in_target / self.target_measured, 1)


@dataclass
class ActionItemStats:
    total: int = 0
    done: int = 0
    wont_do: int = 0
    open: int = 0
    overdue: int = 0

    @property
    def completion(self) -> float | None:
        """Done out of the items that are to be done (won't-do items are out of scope, not failures)."""
        relevant = self.total - self.wont_do
        return round(100.0 * self.done / relevant, 1) if relevant else None


@dataclass
class Metrics:
    start: date
    end: date
    weeks: list[date] = field(default_factory=list)
    severities: list[SeverityPolicy] = field(default_factory=list)
    per_week: dict[date, dict[str, int]] = field(default_factory=dict)
    by_severity: list[Row] = field(default_factory=list)
    by_service: list[Row] = field(default_factory=list)
    total: Row | None = None
    action_items: ActionItemStats = field(default_factory=ActionItemStats)

    def weekly_rows(self) -> list[dict]:
        levels = [s.level for s in self.severities]
        return [
            {
                "week": week,
                "counts": [self.per_week.get(week, {}).get(level, 0) for level in levels],
                "total": sum(self.per_week.get(week, {}).values()),
            }
            for week in self.weeks
        ]


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the portal's time zone: the end date is included."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def default_period(today: date | None = None) -> tuple[date, date]:
    today = today or timezone.localdate()
    return today - timedelta(days=DEFAULT_PERIOD_DAYS - 1), today


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _row(key, label, values: dict, css_class="") -> Row:
    row = Row(key=key, label=label, css_class=css_class, **{name: values.get(name) or 0 for name in COUNTS})
    row.sums = {name: values.get(name) for name in values if name.endswith(("_sum", "_n"))}
    for name, *_ in SPANS:
        total, n = values.get(f"{name}_sum"), values.get(f"{name}_n") or 0
        setattr(row, name, total / n if n and total is not None else None)
    return row


def _sum_rows(key, label, rows: list[Row]) -> Row:
    values = {name: sum(getattr(row, name) for row in rows) for name in COUNTS}
    for name, *_ in SPANS:
        parts = [row.sums.get(f"{name}_sum") for row in rows if row.sums.get(f"{name}_sum") is not None]
        values[f"{name}_sum"] = sum(parts, timedelta()) if parts else None
        values[f"{name}_n"] = sum(row.sums.get(f"{name}_n") or 0 for row in rows)
    return _row(key, label, values)


def incident_metrics(*, user, start: date, end: date, now: datetime | None = None) -> Metrics:
    """Four queries whatever the amount of data (plus the visibility check's group lookup)."""
    now = now or timezone.now()
    since, until = period_bounds(start, end)
    incidents = Incident.objects.visible_to(user).filter(declared_at__gte=since, declared_at__lt=until)
    metrics = Metrics(start=start, end=end)
    metrics.severities = list(SeverityPolicy.objects.order_by("rank"))

    # 1. one scan grouped by (week, severity): the weekly chart, and (sums and counts add up) the per-severity
    # table, so the severities cost no second scan of the period.
    aggregates = _aggregates(now)
    groups: dict[int, list[Row]] = {}
    level_of = {severity.pk: severity.level for severity in metrics.severities}
    weekly = incidents.annotate(week=TruncWeek("declared_at")).values("week", "severity_id")
    weekly = weekly.annotate(**aggregates).order_by()
    for row in weekly:
        week = timezone.localtime(row["week"]).date() if isinstance(row["week"], datetime) else row["week"]
        level = level_of.get(row["severity_id"], "?")
        metrics.per_week.setdefault(week, {})[level] = row["count"]
        groups.setdefault(row["severity_id"], []).append(_row(level, level, row))
    monday = _monday(start)
    while monday <= end:
        metrics.weeks.append(monday)
        monday += timedelta(days=7)

    # 2. per severity (every severity listed, even with no incidents, so the table's shape is stable)
    metrics.by_severity = []
    for severity in metrics.severities:
        row = _sum_rows(severity.level, f"{severity.level} {severity.name}", groups.get(severity.pk, []))
        row.css_class = severity.css_class
        metrics.by_severity.append(row)

    # 3. per service (an incident affecting two services counts for each; none -> "No service")
    by_service = incidents.values("services__pk", "services__name").annotate(**aggregates).order_by("services__name")
    metrics.by_service = [
        _row(str(row["services__pk"] or ""), row["services__name"] or "No service", row) for row in by_service
    ]
    metrics.by_service.sort(key=lambda row: (row.key == "", -row.count, row.label))

    # all incidents of the period: the severities added up (every incident has exactly one severity)
    metrics.total = _sum_rows("all", "All severities", metrics.by_severity)

    # 4. action items of the period's incidents
    today = timezone.localdate(now)
    stats = ActionItem.objects.filter(incident__in=incidents.values("pk")).aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=ActionItemStatus.DONE)),
        wont_do=Count("id", filter=Q(status=ActionItemStatus.WONT_DO)),
        open=Count("id", filter=Q(status__in=[ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS])),
        overdue=Count(
            "id", filter=Q(status__in=[ActionItemStatus.OPEN, ActionItemStatus.IN_PROGRESS], due_date__lt=today)
        ),
    )
    metrics.action_items = ActionItemStats(**stats)
    return metrics


def seconds(value: timedelta | None) -> str:
    return "" if value is None else str(int(round(value.total_seconds())))


def csv_rows(metrics: Metrics):
    """Long format (section, group, metric, value): one shape for every table, easy to pivot in a spreadsheet."""
    yield ["section", "group", "metric", "value"]
    yield ["period", "", "start", metrics.start.isoformat()]
    yield ["period", "", "end", metrics.end.isoformat()]
    for week in metrics.weekly_rows():
        for severity, count in zip(metrics.severities, week["counts"], strict=True):
            yield ["incidents_per_week", week["week"].isoformat(), severity.level, str(count)]
    for section, rows in (("severity", metrics.by_severity), ("service", metrics.by_service), ("all", [metrics.total])):
        for row in rows:
            yield [section, row.label, "incidents", str(row.count)]
            for name in ("mtta", "mttr", "ttd", "ttm"):
                yield [section, row.label, f"{name}_seconds", seconds(getattr(row, name))]
            yield [section, row.label, "acknowledged_within_target", str(row.ack_in_target)]
            yield [section, row.label, "response_target_measured", str(row.target_measured)]
            yield [
                section,
                row.label,
                "response_target_compliance_percent",
                "" if row.compliance is None else f"{row.compliance}",
            ]
    stats = metrics.action_items
    for name in ("total", "done", "wont_do", "open", "overdue"):
        yield ["action_items", "", name, str(getattr(stats, name))]
    yield ["action_items", "", "completion_percent", "" if stats.completion is None else f"{stats.completion}"]
