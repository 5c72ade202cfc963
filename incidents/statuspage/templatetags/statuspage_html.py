"""`{% public_update update item show_next_update %}`: one published update, in the guide's status page template.

Built here rather than with an `{% include %}` per update: a cold render of the public page shows every update of
every active incident (and rendering the history's days shows theirs), and an include costs about a millisecond
each (templates/statuspage/partials/update.html was this markup). Text fields are plain text, escaped, line
breaks kept; times in UTC, the portal's one format (the public page is the same for everyone). The incident's
title is its heading: an update repeats its own title only when it differs. "Next update" only where asked (an
ongoing incident's latest update)."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import linebreaksbr
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from incidents.models import UpdateStatus
from incidents.profiles.templatetags.when import when_utc

from ..models import ServiceState

register = template.Library()

STATUS_LABELS = dict(UpdateStatus.choices)
STATE_LABELS = dict(ServiceState.choices)


def _text(value: str) -> str:
    return linebreaksbr(value, autoescape=True)


def public_update_html(update, item=None, show_next_update: bool = False) -> SafeString:
    status = escape(update.status)
    heading = f'<span class="status status-{status}">{escape(STATUS_LABELS.get(update.status, update.status))}</span>'
    if item is None or update.title != item.title:
        heading += f" · {escape(update.title)}"
    parts = [
        f'<article class="status-update" id="update-{int(update.pk)}">',
        f"<h4>{heading}</h4>",
        f'<p class="muted">Posted {when_utc(update.posted_at)}</p>',
        f"<p>{_text(update.description)}</p>",
    ]
    components = getattr(update, "public_component_states", None)
    if components:
        parts.append('<p class="field-label">Affected services</p><ul class="affected">')
        parts += [
            f'<li>{escape(component.service.name)} <span class="state state-{escape(component.state)}">'
            f"{escape(STATE_LABELS.get(component.state, component.state))}</span></li>"
            for component in components
        ]
        parts.append("</ul>")
    if update.workaround:
        parts.append(f'<p class="field-label">Workaround</p><p>{_text(update.workaround)}</p>')
    if show_next_update and update.next_update_at:
        parts.append(f"<p>Next update {when_utc(update.next_update_at)}</p>")
    parts.append("</article>")
    return mark_safe("\n".join(parts))  # noqa: S308 - every value above is escaped or built by when_utc


@register.simple_tag
def public_update(update, item=None, show_next_update=False):
    return public_update_html(update, item, show_next_update)
