from django import template

from ..models import IncidentChannel

register = template.Library()


@register.inclusion_tag("chatops/partials/incident_channel.html")
def incident_channel(incident):
    """The incident's chat channel (name and link) on the incident page; nothing when there is none."""
    return {"channel": IncidentChannel.objects.filter(incident=incident).first()}
