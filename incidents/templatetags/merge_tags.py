from django import template
from django.db.models import Exists, OuterRef, Q

register = template.Library()


def _linked(incident, user) -> tuple[list, list]:
    """Related incidents and duplicates merged in, visible to `user`, in one query."""
    rows = (
        type(incident)
        .objects.visible_to(user)
        .filter(Q(related_incidents=incident) | Q(duplicate_of=incident))
        .annotate(is_related=Exists(type(incident).related_incidents.through.objects.filter(
            from_incident_id=OuterRef("pk"), to_incident_id=incident.pk
        )))
        .distinct()
        .order_by("number")
    )  # fmt: skip
    rows = list(rows)
    return [row for row in rows if row.is_related], [row for row in rows if row.duplicate_of_id == incident.pk]


@register.inclusion_tag("incidents/partials/merge_card.html", takes_context=True)
def merge_card(context, incident, can_respond=False):
    """{% merge_card incident can_respond %}: related incidents, duplicates merged in, and the merge/link forms."""
    related, duplicates = _linked(incident, context["request"].user)
    return {
        "incident": incident,
        "can_respond": can_respond,
        "related": related,
        "duplicates": duplicates,
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("incidents/partials/related_line.html", takes_context=True)
def related_line(context, incident):
    """{% related_line incident %}: "Related: INC-3, INC-9 · Duplicates merged in: INC-7" (visible ones only)."""
    related, duplicates = _linked(incident, context["request"].user)
    return {"related": related, "duplicates": duplicates}
