"""The incident metrics page and its CSV export, for a chosen period (presets or dates)."""

from __future__ import annotations

import csv
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from incidents.templatetags.incident_tags import duration

from . import charts
from .forms import (
    PeriodForm,
)
from .metrics import csv_rows, default_period, incident_metrics

# --- metrics -----------------------------------------------------------------------------------------------


def _period(request):
    form = PeriodForm(request.GET or None)
    if not request.GET:
        start, end = default_period()
        return form, start, end, 200
    if form.is_valid():
        return form, form.cleaned_data["start"], form.cleaned_data["end"], 200
    start, end = default_period()
    return form, start, end, 400


def _presets(start, end) -> list[dict]:
    today = timezone.localdate()
    choices = [
        ("Last 30 days", today - timedelta(days=29)),
        ("Last 90 days", today - timedelta(days=89)),
        ("Last 12 months", today - timedelta(days=364)),
        ("This year", today.replace(month=1, day=1)),
    ]
    return [
        {"label": label, "query": f"start={since}&end={today}", "current": (since, today) == (start, end)}
        for label, since in choices
    ]


def _minutes(value) -> float:
    return value.total_seconds() / 60 if value is not None else 0.0


@login_required
@require_GET
def metrics(request):
    form, start, end, status = _period(request)
    data = incident_metrics(user=request.user, start=start, end=end)
    series = [(s.level, [row["counts"][i] for row in data.weekly_rows()]) for i, s in enumerate(data.severities)]
    colour = {s.level: charts.SEVERITY_COLOURS.get(s.level, charts.NEUTRAL) for s in data.severities}

    def time_bars(attribute):
        return [
            charts.Bar(
                row.key,
                _minutes(getattr(row, attribute)),
                duration(getattr(row, attribute)) or "-",
                colour.get(row.key, charts.NEUTRAL),
            )
            for row in data.by_severity
        ]

    stats = data.action_items
    context = {
        "form": form,
        "metrics": data,
        "start": start,
        "end": end,
        "weekly_chart": charts.stacked_weekly(
            weeks=data.weeks, series=series, title="Incidents per week by severity", chart_id="weekly"
        ),
        "mtta_chart": charts.horizontal_bars(
            bars=time_bars("mtta"), title="Mean time to acknowledge by severity", chart_id="mtta"
        ),
        "mttr_chart": charts.horizontal_bars(
            bars=time_bars("mttr"), title="Mean time to resolve by severity", chart_id="mttr"
        ),
        "compliance_chart": charts.horizontal_bars(
            bars=[
                charts.Bar(
                    row.key,
                    row.compliance or 0.0,
                    "-" if row.compliance is None else f"{row.compliance:g}% of {row.target_measured}",
                    colour.get(row.key, charts.NEUTRAL),
                )
                for row in data.by_severity
            ],
            title="Acknowledged within the response target, by severity",
            chart_id="compliance",
            max_value=100,
        ),
        "action_chart": charts.horizontal_bars(
            bars=[
                charts.Bar("Done", stats.done, str(stats.done), "#15803d"),
                charts.Bar("Open (on time)", stats.open - stats.overdue, str(stats.open - stats.overdue), "#1e40af"),
                charts.Bar("Overdue", stats.overdue, str(stats.overdue), "#b91c1c"),
                charts.Bar("Won't do", stats.wont_do, str(stats.wont_do), "#6b7280"),
            ],
            title="Action items of the period's incidents",
            chart_id="actions",
        ),
        "csv_query": f"start={start.isoformat()}&end={end.isoformat()}",
        "presets": _presets(start, end),
    }
    return render(request, "postmortems/metrics.html", context, status=status)


@login_required
@require_GET
def metrics_csv(request):
    form, start, end, status = _period(request)
    if status != 200:
        errors = "; ".join(message for messages_ in form.errors.values() for message in messages_)
        return HttpResponse(f"Invalid period: {errors}", status=400, content_type="text/plain")
    data = incident_metrics(user=request.user, start=start, end=end)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="incident-metrics-{start}-to-{end}.csv"'
    writer = csv.writer(response)
    for row in csv_rows(data):
        writer.writerow(row)
    return response
