"""Template tags of the post-mortem area. my_action_items_panel loads the dashboard's "My open action items"
card itself, so the dashboard view needs no knowledge of action items (one query)."""

from django import template
from django.utils import timezone

from postmortems.selectors import my_action_items

register = template.Library()

DASHBOARD_LIMIT = 8


@register.inclusion_tag("postmortems/partials/my_action_items_panel.html")
def my_action_items_panel(user):
    items = my_action_items(user=user, limit=DASHBOARD_LIMIT + 1)
    return {"items": items[:DASHBOARD_LIMIT], "more": len(items) > DASHBOARD_LIMIT, "today": timezone.localdate()}
