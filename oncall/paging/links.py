"""Signed one-click acknowledge links in page messages: they work without a login session (the signature and
the per-notification nonce are the credential), expire after PAGING_ACK_LINK_MAX_AGE seconds, and are single
use (the nonce is recorded when used). GET shows a confirm button and POST acknowledges, so mail scanners that
follow links acknowledge nothing."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse

from incidents import access
from incidents.audit.context import acting_as
from incidents.errors import DomainError
from incidents.models import Incident
from incidents.services.status import acknowledge_incident

from .models import AcknowledgeLinkUse, Notification, Page
from .services.lifecycle import acknowledge_pages

SALT = "oncall.paging.acknowledge-link"


def ack_token(notification: Notification) -> str:
    return signing.dumps({"n": notification.pk, "k": notification.ack_nonce}, salt=SALT, compress=True)


def ack_url(notification: Notification) -> str:
    return settings.SITE_URL + reverse("paging:acknowledge_link", kwargs={"token": ack_token(notification)})


class LinkError(DomainError):
    status_code = 400


def notification_for_token(token: str) -> Notification:
    """The notification a link belongs to; LinkError when the link is forged, expired or already used."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.PAGING_ACK_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkError("This acknowledge link has expired. Open the incident in the portal to acknowledge it.")
    except signing.BadSignature:
        raise LinkError("This acknowledge link is not valid.")
    notification = (
        Notification.objects.select_related("incident__severity", "page__acknowledged_by", "person__user")
        .filter(pk=data.get("n"), ack_nonce=data.get("k") or "-")
        .first()
    )
    if notification is None or not notification.ack_nonce:
        raise LinkError("This acknowledge link is not valid.")
    if AcknowledgeLinkUse.objects.filter(nonce=notification.ack_nonce).exists():
        raise LinkError("This acknowledge link has already been used.")
    return notification


def acknowledge_via_link(*, token: str) -> tuple[Page | None, bool]:
    """Acknowledge the incident's paging as the person the link was sent to. Returns their page and whether this
    link acknowledged it (False: someone acknowledged or resolved first). The link is used up either way."""
    notification = notification_for_token(token)
    return acknowledge_as(notification, via="link in the page message", use_link=True)


def acknowledge_as(notification: Notification, *, via: str, use_link: bool = False) -> tuple[Page | None, bool]:
    """Acknowledge the paging of a notification's incident as the person it reached (a link, an SMS reply, a key
    pressed on a call). The same service a portal user's acknowledgement runs, so every channel writes one
    acknowledgement, once. Returns the notification's page and whether this acknowledged it."""
    person = notification.person
    user = person.user if person is not None else None
    by = user if user is not None and access.can_respond(user) else None
    # The link is the person's credential: the audit trail names them, as if they had signed in.
    with acting_as(by), transaction.atomic():
        # The incident row first, as every acknowledgement does (lock order: incident, page, notification).
        incident = Incident.objects.select_for_update().get(pk=notification.incident_id)
        if use_link:
            try:
                with transaction.atomic():
                    AcknowledgeLinkUse.objects.create(nonce=notification.ack_nonce, notification=notification)
            except IntegrityError:
                raise LinkError("This acknowledge link has already been used.")
        closed = acknowledge_pages(incident=incident, by=by, person=person, via=via)
        if incident.acknowledged_at is None and incident.status != "closed":
            acknowledge_incident(incident=incident, by=by)
    page = Page.objects.select_related("acknowledged_by", "acknowledged_by_person").filter(pk=notification.page_id)
    return page.first(), any(p.pk == notification.page_id for p in closed)
