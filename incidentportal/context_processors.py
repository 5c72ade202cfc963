from django.conf import settings

from incidents import access, live


def portal(request):
    user = getattr(request, "user", None)

    # Called only by templates that show the links; they share the request's cached group lookup.
    def can_audit():
        return access.is_admin(user) or access.is_security(user)

    def can_manage_status_page():
        # Responders set service states; managers (responders too) also schedule maintenance.
        return access.can_respond(user)

    return {
        "SITE_URL": settings.SITE_URL,
        "PORTAL_NAME": "Incident Portal",
        "can_audit": can_audit,
        "can_manage_status_page": can_manage_status_page,
        "LIVE_PUSH": live.enabled(),
        # django-csp 4 names the nonce CSP_NONCE (csp.context_processors.nonce); django-htmx's {% htmx_script %}
        # reads `csp_nonce`. Both are the request's lazy nonce: using it in a template puts it in the header.
        "csp_nonce": getattr(request, "csp_nonce", ""),
    }
