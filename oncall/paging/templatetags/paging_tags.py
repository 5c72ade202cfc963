"""Paging state on the incident page and "my open pages" in the site header."""

from django import template

from .. import selectors

register = template.Library()


@register.simple_tag
def paging_state(incident):
    """{% paging_state incident as paging %}: the newest page, its notifications (two queries)."""
    return selectors.paging_state(incident=incident)


@register.inclusion_tag("paging/partials/header_pages.html", takes_context=True)
def my_open_pages(context):
    """The header item: how many open pages reached me, linking to /paging/mine/ (one query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"count": selectors.my_open_page_count(user=user) if user is not None else 0}
