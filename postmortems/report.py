"""The post-mortem report, read-only: one context (fixed number of queries) rendered three ways — the page,
the emailed report (HTML with inlined CSS, plus plain text) and the Markdown download in the guide's template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from incidents.markdown import render_markdown
from incidents.models import Role, RoleAssignment
from incidents.profiles.zones import format_moment, format_utc, iso_utc

from .models import SECTIONS, ActionItem, ActionItemStatus, PostMortem, PostMortemTimelineItem
from .services.drafting import humanize_duration, response_times


def absolute_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _name(user) -> str:
    if user is None:
        return "-"
    return user.get_full_name() or user.get_username()


@dataclass
class Report:
    postmortem: PostMortem
    commander: object
    technical_lead: object
    services: list
    timeline: list[PostMortemTimelineItem]
    action_items: list[ActionItem]
    facts: list[tuple[str, str]] = field(default_factory=list)
    times: list[tuple[str, str]] = field(default_factory=list)

    @property
    def incident(self):
        return self.postmortem.incident

    @property
    def url(self) -> str:
        return absolute_url(self.postmortem.get_absolute_url())

    @property
    def incident_url(self) -> str:
        return absolute_url(self.incident.get_absolute_url())

    @cached_property
    def _zone(self):
        return timezone.get_current_timezone()

    @cached_property
    def timeline_spans_days(self) -> bool:
        days = {item.occurred_at.astimezone(self._zone).date() for item in self.timeline}
        return len(days) > 1

    def time_label(self, moment) -> str:
        local = moment.astimezone(self._zone)
        return f"{local:%Y-%m-%d %H:%M}" if self.timeline_spans_days else f"{local:%H:%M}"

    def timeline_markdown(self) -> str:
        return "\n".join(f"{self.time_label(item.occurred_at)} - {item.text}" for item in self.timeline)

    def action_items_markdown(self) -> str:
        lines = []
        for n, item in enumerate(self.action_items, start=1):
            box = "x" if item.status == ActionItemStatus.DONE else " "
            suffix = " - won't do" if item.status == ActionItemStatus.WONT_DO else ""
            lines.append(
                f"{n}. [{box}] {item.title} (Owner: {_name(item.owner)}, Due: {format_moment(item.due_date)}, "
                f"{item.get_priority_display()} priority, {item.get_kind_display()}){suffix}"
            )
        return "\n".join(lines)

    def impact_markdown(self) -> str:
        pm = self.postmortem
        lines = []
        if pm.users_affected:
            lines.append(f"- Users Affected: {pm.users_affected}")
        if pm.revenue_impact:
            lines.append(f"- Revenue Impact: {pm.revenue_impact}")
        head = "\n".join(lines)
        return "\n\n".join(part for part in (head, pm.impact.strip()) if part)

    @cached_property
    def five_whys(self) -> dict | None:
        """The incident's current five whys until the post-mortem is published, then the copy taken then."""
        pm = self.postmortem
        if pm.is_published:
            return pm.five_whys
        current = getattr(pm.incident, "five_whys", None)
        if current is None:
            return None
        return {"problem": current.problem, "whys": list(current.whys), "root_cause": current.root_cause}

    def five_whys_markdown(self) -> str:
        data = self.five_whys
        if not data or not (data.get("problem") or data.get("whys")):
            return ""
        lines = [f"**Five whys.** Problem: {data.get('problem', '')}", ""]
        lines += [f"{n}. Why? {why}" for n, why in enumerate(data.get("whys") or [], start=1)]
        return "\n".join(lines)

    def section_markdown(self, name: str) -> str:
        if name == "root_cause":
            parts = (self.postmortem.root_cause.strip(), self.five_whys_markdown())
            return "\n\n".join(part for part in parts if part)
        if name == "impact":
            return self.impact_markdown()
        if name == "timeline":
            return self.timeline_markdown()
        if name == "action_items":
            return self.action_items_markdown()
        return getattr(self.postmortem, name).strip()

    def sections_html(self) -> list[dict]:
        """Each of the guide's sections as sanitised HTML, in the template's order."""
        sections = []
        for name, heading in SECTIONS:
            # The timeline and action items are tables in the templates, not Markdown.
            html = "" if name in {"timeline", "action_items"} else render_markdown(self.section_markdown(name))
            sections.append({"name": name, "heading": heading, "html": html})
        return sections

    def timeline_rows(self) -> list[dict]:
        # text_html is rendered when a line is written, so a long timeline costs no Markdown here.
        return [
            {
                "time": self.time_label(item.occurred_at),
                "at": item.occurred_at,
                "html": item.text_html or render_markdown(item.text),
            }
            for item in self.timeline
        ]

    @cached_property
    def timeline_table_rows(self) -> SafeString:
        """The timeline's <tr> rows, built here rather than in a template loop: a 1,000-line timeline renders in
        a few milliseconds. Times are escaped; text_html was sanitised when the line was written. A time is short,
        as in the guide's template ("14:32", the date too when the timeline spans days), with the one format (zone
        named) and UTC on hover."""
        return mark_safe(  # noqa: S308 - escaped / sanitised parts only
            "".join(
                f'<tr><td class="when"><time datetime="{iso_utc(row["at"])}" '
                f'title="{escape(format_moment(row["at"], self._zone))} ({format_utc(row["at"])})">'
                f'{escape(row["time"])}</time></td><td class="line">{row["html"]}</td></tr>'
                for row in self.timeline_rows()
            )
        )


def build_report(postmortem_id: int, *, queryset=None) -> Report:
    """Everything the report shows, in six queries whatever the size of the incident."""
    base = queryset if queryset is not None else PostMortem.objects.all()
    postmortem = base.select_related(
        "incident", "incident__severity", "incident__five_whys", "owner", "published_by"
    ).get(pk=postmortem_id)
    incident = postmortem.incident
    holders = {
        assignment.role: assignment.holder
        for assignment in RoleAssignment.objects.filter(incident=incident, relieved_at__isnull=True).select_related(
            "holder"
        )
    }
    report = Report(
        postmortem=postmortem,
        commander=holders.get(Role.INCIDENT_COMMANDER),
        technical_lead=holders.get(Role.TECHNICAL_LEAD),
        services=list(incident.services.all()),
        timeline=list(PostMortemTimelineItem.objects.filter(postmortem=postmortem, is_included=True)),
        action_items=list(
            ActionItem.objects.filter(postmortem=postmortem).select_related("owner").order_by("due_date", "id")
        ),
    )
    declared = timezone.localtime(incident.declared_at)
    report.facts = [
        ("Incident", incident.reference),
        ("Date", format_moment(declared.date())),
        ("Duration", humanize_duration(incident.duration)),
        ("Severity", f"{incident.severity.level} - {incident.severity.name}"),
        ("Incident Commander", _name(report.commander)),
        ("Services", ", ".join(s.name for s in report.services) or "-"),
    ]
    report.times = [(label, humanize_duration(value)) for label, value in response_times(incident)]
    return report


def report_markdown(report: Report) -> str:
    """The guide's post-mortem template, filled in."""
    pm = report.postmortem
    parts = [f"# {pm.title}"]
    for name, heading in SECTIONS:
        body = report.section_markdown(name)
        parts.append(f"## {heading}\n{body}" if body else f"## {heading}\n_Nothing recorded._")
    parts.append(f"---\n{report.incident.reference} · {pm.get_status_display()} · {report.url}")
    return "\n\n".join(parts) + "\n"
