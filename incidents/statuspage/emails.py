"""The two emails subscribers get: the double opt-in confirmation and a published status page update.
Every update email carries a one-click unsubscribe link and the RFC 2369 / RFC 8058 headers, so mail
clients can offer "Unsubscribe" and unsubscribe with a POST that needs no login."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from . import tokens


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def unsubscribe_url(subscriber) -> str:
    token = tokens.make_unsubscribe_token(subscriber_id=subscriber.pk, email=subscriber.email)
    return absolute(reverse("statuspage:unsubscribe", kwargs={"token": token}))


def confirmation_email(subscriber, *, all_services: bool, services, issued_at) -> EmailMultiAlternatives:
    token = tokens.make_confirm_token(
        subscriber_id=subscriber.pk,
        email=subscriber.email,
        all_services=all_services,
        service_ids=[service.pk for service in services],
        issued_at=issued_at,
    )
    context = {
        "confirm_url": absolute(reverse("statuspage:confirm", kwargs={"token": token})),
        "status_url": absolute(reverse("statuspage:index")),
        "all_services": all_services,
        "services": services,
        "max_age_days": tokens.CONFIRM_MAX_AGE // 86400,
    }
    return EmailMultiAlternatives(
        subject="Confirm your status page subscription",
        body=render_to_string("statuspage/email/confirm.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers={"Auto-Submitted": "auto-generated"},
    )


def update_email(update, subscriber) -> EmailMultiAlternatives:
    """The guide's status page template, as plain text and HTML. `update` has public_affected_services set."""
    link = unsubscribe_url(subscriber)
    context = {
        "update": update,
        "affected": update.public_affected_services,
        "unsubscribe_url": link,
        "status_url": absolute(reverse("statuspage:index")) + f"#incident-{update.incident.number}",
    }
    message = EmailMultiAlternatives(
        # A title is one line in the form, but a header must never carry a line break whatever the source.
        subject=" ".join(f"[{update.get_status_display()}] {update.title}".split()),
        body=render_to_string("statuspage/email/update.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers={
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(render_to_string("statuspage/email/update.html", context), "text/html")
    return message
