"""{% oncall_header %}: the compact "who is on call now" line of the site header (two queries per page)."""

from django import template

from oncall import selectors

register = template.Library()


@register.inclusion_tag("oncall/partials/header_oncall.html", takes_context=True)
def oncall_header(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"on_call": []}
    # Cached on the request so a page that renders the header twice still pays two queries.
    cached = getattr(request, "_oncall_header", None)
    if cached is None:
        cached = selectors.header_on_call()
        request._oncall_header = cached
    return {"on_call": cached}
