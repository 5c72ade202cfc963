from django import template
from django.conf import settings

from incidents.alerting.selectors import recent_changes_for

register = template.Library()


@register.inclusion_tag("alerting/partials/recent_changes.html")
def recent_changes(incident, hours=None):
    """{% load alerting_tags %}{% recent_changes incident %}: the changes to the incident's services before it."""
    hours = hours or settings.ALERTING_RECENT_CHANGES_HOURS
    return {"incident": incident, "changes": recent_changes_for(incident, hours=hours), "hours": hours}
