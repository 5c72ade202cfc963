"""Time and countdown helpers for the responder pages. The server renders the first value; static/js/incidents.js
keeps the same markup ticking (data-deadline / data-since) between refreshes."""

from datetime import timedelta
from functools import lru_cache

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from incidents.models import EntryKind, Role
from incidents.profiles.zones import format_moment, format_utc, iso_utc, localise_moments

register = template.Library()

# A countdown turns amber when less than this share of its window is left.
AMBER_SHARE = 1 / 3


@register.filter
def duration(value) -> str:
    """A timedelta as "2d 3h", "1h 05m", "4m 12s"; empty for None."""
    if value is None or value == "":
        return ""
    seconds = int(abs(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@register.filter
def cadence(value) -> str:
    """A policy duration the way the guide writes it: "15 min", "1 h", "4 h"."""
    if not value:
        return ""
    minutes = int(value.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


@register.filter
def since(moment) -> str:
    return duration(timezone.now() - moment) if moment else ""


def _deadline_state(deadline, window: timedelta | None, now) -> tuple[str, str]:
    remaining = deadline - now
    if remaining.total_seconds() < 0:
        return "bad", f"overdue by {duration(remaining)}"
    if window and remaining < window * AMBER_SHARE:
        return "warn", f"{duration(remaining)} left"
    return "ok", f"{duration(remaining)} left"


def _countdown_html(state: str = "", text: str = "", deadline=None, window: float = 0) -> str:
    data = f' data-deadline="{deadline.isoformat()}" data-window="{int(window)}"' if deadline else ""
    return mark_safe(f'<span class="countdown {state}"{data}>{escape(text)}</span>')  # noqa: S308 - text escaped


@register.simple_tag
def response_countdown(incident):
    return _countdown_html(**_response_countdown(incident))


@register.filter
def acknowledged_late(incident) -> bool:
    """Acknowledged (or still not acknowledged) later than the guide's acknowledge target after declaration: the
    paging timer writes "Acknowledge target missed" on the timeline then, and the header must say the same."""
    took = (incident.acknowledged_at or timezone.now()) - incident.declared_at
    if incident.acknowledged_at is None and not incident.is_active:
        return False
    return took > settings.ACKNOWLEDGE_TARGET


@register.simple_tag
def acknowledge_signal(incident):
    """Time to acknowledge against the acknowledge target (5 min): green within it, red once past it."""
    target = cadence(settings.ACKNOWLEDGE_TARGET)
    late = acknowledged_late(incident)
    if incident.acknowledged_at is None:
        if not incident.is_active:
            return _countdown_html("", "not acknowledged")
        return _countdown_html("bad" if late else "warn", f"not yet{f' (target {target} missed)' if late else ''}")
    took = duration(incident.acknowledged_at - incident.declared_at)
    if late:
        return _countdown_html("bad", f"{took} (target {target} missed)")
    return _countdown_html("ok", f"{took} (within {target})")


@register.simple_tag
def update_countdown(incident):
    return _countdown_html(**_update_countdown(incident))


def _response_countdown(incident):
    """The response target: green while plenty of time is left, amber in its last third, red when breached.
    Once acknowledged it shows how long that took against the target."""
    due = incident.response_due_at
    if due is None:
        return {"state": "", "text": "no target"}
    if incident.acknowledged_at:
        target = cadence(due - incident.declared_at) or "next business day"
        if incident.acknowledged_at <= due:
            return {"state": "ok", "text": f"met (within {target})"}
        return {"state": "bad", "text": f"missed (target {target})"}
    if not incident.is_active:
        return {"state": "", "text": "not acknowledged"}
    now = timezone.now()
    state, text = _deadline_state(due, due - incident.declared_at, now)
    return {"state": state, "text": text, "deadline": due, "window": (due - incident.declared_at).total_seconds()}


def _update_countdown(incident):
    """When the next internal update is due (the severity's update cadence)."""
    due = incident.next_update_due_at
    if due is None or not incident.is_active:
        return {"state": "", "text": "as needed" if incident.is_active else "no more updates due"}
    cadence = incident.severity.update_cadence
    state, text = _deadline_state(due, cadence, timezone.now())
    return {
        "state": state,
        "text": text,
        "deadline": due,
        "window": cadence.total_seconds() if cadence else 0,
    }


@register.filter
def role_holder(incident, role: str):
    """The current holder of a role, from the prefetched current_roles (no query)."""
    for assignment in getattr(incident, "current_roles", ()):
        if assignment.role == role:
            return assignment.holder
    return None


@register.filter
def detail_url(incident) -> str:
    """Incident.get_absolute_url without a URL reverse per row (a dashboard or list page links ~100 times)."""
    return _detail_prefix() + f"INC-{incident.number}/"


@lru_cache(maxsize=1)
def _detail_prefix() -> str:
    return reverse("incidents:detail", kwargs={"reference": "INC-0"})[: -len("INC-0/")]


@register.filter
def person(user) -> str:
    if user is None:
        return "the portal"
    return user.get_full_name() or user.get_username()


@register.simple_tag
def role_list(incident):
    """[(Role, holder or None)] in the guide's order, from the prefetched current_roles."""
    held = {a.role: a.holder for a in getattr(incident, "current_roles", ())}
    return [(role, held.get(role.value)) for role in Role]


@register.simple_tag
def timeline_entries(entries):
    """The timeline's <li>s. Built in Python rather than one template partial per entry: a busy incident shows
    200 entries per page and every viewer polls every 2 seconds, and this is several times faster."""
    return mark_safe("\n".join(_entry_html(entry) for entry in entries))  # noqa: S308 - every part is escaped


KIND_LABELS = dict(EntryKind.choices)


def _entry_html(entry) -> str:
    occurred = entry.occurred_at
    classes = f"entry kind-{escape(entry.kind)} event-{escape(entry.event_type)}" + (
        " key-event" if entry.is_key_event else ""
    )
    backdated = ""
    if entry.is_backdated:
        written = format_moment(entry.created_at)
        backdated = f' <span class="backdated" title="Written {written}">back-dated</span>'
    merged = (entry.data or {}).get("merged_from")
    origin = f' <span class="merged-from">from {escape(merged)}</span>' if merged else ""
    # body_html was sanitised with nh3 when the entry was written (incidents.markdown); everything else is escaped.
    return (
        f'<li id="entry-{entry.id}" data-entry-id="{entry.id}" data-event-type="{escape(entry.event_type)}" '
        f'class="{classes}">'
        f'<div class="entry-meta"><time datetime="{iso_utc(occurred)}" title="{format_utc(occurred)}">'
        f"{format_moment(occurred)}</time> "
        f'<span class="kind-label">{escape(KIND_LABELS.get(entry.kind, entry.kind))}</span> '
        f'<span class="author">{escape(person(entry.author))}</span>{backdated}{origin}</div>'
        f'<div class="markdown">{localise_moments(entry.body_html)}</div></li>'
    )
