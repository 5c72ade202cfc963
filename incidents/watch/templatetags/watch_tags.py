from django import template

from incidents.watch.selectors import expiring_certificates
from incidents.watch.services import probes_for

register = template.Library()


@register.inclusion_tag("watch/partials/certificates_card.html")
def certificates_expiring():
    """{% load watch_tags %}{% certificates_expiring %}: the dashboard card of certificates expiring within 30 days."""
    return {"certificates": expiring_certificates()}


@register.inclusion_tag("watch/partials/triage_card.html")
def triage_card(incident, can_respond=False):
    """{% triage_card incident can_respond %}: the incident page's "Run triage" card (its probes and the button)."""
    return {"incident": incident, "probe_count": len(probes_for(incident)), "can_respond": can_respond}
