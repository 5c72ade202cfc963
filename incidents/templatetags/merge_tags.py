from django import template

register = template.Library()


@register.inclusion_tag("incidents/partials/merge_card.html", takes_context=True)
def merge_card(context, incident, can_respond=False):
    """{% merge_card incident can_respond %}: related incidents, duplicates merged in, and the merge/link forms."""
    user = context["request"].user
    visible = type(incident).objects.visible_to(user)
    return {
        "incident": incident,
        "can_respond": can_respond,
        "related": list(visible.filter(related_incidents=incident).order_by("-declared_at")),
        "duplicates": list(visible.filter(duplicate_of=incident).order_by("number")),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("incidents/partials/related_line.html", takes_context=True)
def related_line(context, incident):
    """{% related_line incident %}: "Related: INC-3, INC-9 · Duplicates merged in: INC-7" (visible ones only)."""
    user = context["request"].user
    visible = type(incident).objects.visible_to(user)
    return {
        "related": list(visible.filter(related_incidents=incident).order_by("number")),
        "duplicates": list(visible.filter(duplicate_of=incident).order_by("number")),
    }
