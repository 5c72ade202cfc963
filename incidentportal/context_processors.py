from django.conf import settings

from incidents import live


def portal(request):
    user = getattr(request, "user", None)

    def can_audit():
        # Called only by templates that show the link; shares the request's cached group lookup.
        from incidents import access

        return access.is_admin(user) or access.is_security(user)

    return {
        "SITE_URL": settings.SITE_URL,
        "PORTAL_NAME": "Incident Portal",
        "can_audit": can_audit,
        "LIVE_PUSH": live.enabled(),
    }
