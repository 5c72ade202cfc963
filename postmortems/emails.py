"""Emails of the post-mortem area: the published report (multipart: HTML with inlined CSS for mail clients
that drop <style>, plus plain text) and the reminders. Called from Celery tasks after commit.

Restricted incidents: the report goes only to people who may see the incident (visible_to), never to the
configured stakeholder addresses, so a security incident's details never leave the security circle by email.
Reminders check the same rule when they are sent, not only when the item was assigned.
"""

from __future__ import annotations

import logging

import css_inline
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from incidents.models import Incident, IncidentResponder, Role
from incidents.profiles.services import zone_of
from incidents.profiles.zones import format_moment
from incidents.selectors import current_holder

from .models import ActionItem, PostMortem
from .report import Report, absolute_url, build_report, report_markdown

logger = logging.getLogger("postmortems.emails")

_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def stakeholder_emails() -> list[str]:
    return [address for address in getattr(settings, "POSTMORTEM_STAKEHOLDER_EMAILS", []) if address]


def report_recipients(postmortem: PostMortem) -> list[str]:
    """Responders + attendees (+ configured stakeholders), deduplicated case-insensitively, in a stable order."""
    incident = postmortem.incident
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    responder_ids = IncidentResponder.objects.filter(incident=incident).values("user_id")
    people = users.filter(pk__in=responder_ids) | users.filter(pk__in=postmortem.attendees.values("pk"))
    addresses: list[str] = []
    for user in people.distinct().order_by("pk"):
        if incident.is_restricted and not Incident.objects.visible_to(user).filter(pk=incident.pk).exists():
            continue
        addresses.append(user.email)
    if not incident.is_restricted:
        addresses += stakeholder_emails()
    seen, unique = set(), []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return unique


def one_line(text: str) -> str:
    """Header-safe: a title that came in through the API may hold line breaks, which mail headers refuse."""
    return " ".join(str(text).split())


def report_subject(report: Report) -> str:
    incident = report.incident
    return one_line(f"[{incident.severity.level}] Post-mortem {incident.reference}: {incident.title}")


def render_report_html(report: Report) -> str:
    """The report email's HTML with every style inlined (Gmail and Outlook ignore most <style> rules)."""
    html = render_to_string(
        "postmortems/emails/report.html",
        {"report": report, "postmortem": report.postmortem, "incident": report.incident},
    )
    return _INLINER.inline(html)


def render_report_text(report: Report) -> str:
    return render_to_string("postmortems/emails/report.txt", {"report": report, "markdown": report_markdown(report)})


def build_report_message(postmortem_id: int) -> EmailMultiAlternatives | None:
    report = build_report(postmortem_id)
    recipients = report_recipients(report.postmortem)
    if not recipients:
        return None
    message = EmailMultiAlternatives(
        subject=report_subject(report),
        body=render_report_text(report),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_report_html(report), "text/html")
    return message


def send_report(postmortem_id: int) -> int:
    message = build_report_message(postmortem_id)
    if message is None:
        return 0
    return message.send(fail_silently=False)


def _send_text(*, subject: str, template: str, context: dict, to: list[str], reader=None) -> int:
    """One reader's email: times in their time zone (incidents.profiles)."""
    to = [address for address in to if address]
    if not to:
        return 0
    with timezone.override(zone_of(reader)):
        body = render_to_string(template, context)
    return EmailMultiAlternatives(
        subject=one_line(subject), body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=to
    ).send()


def send_action_item_reminder(item_id: int, kind: str) -> int:
    item = (
        ActionItem.objects.select_related("owner", "owner_person", "incident", "incident__severity", "postmortem")
        .filter(pk=item_id)
        .first()
    )
    if item is None or not item.is_open:
        return 0  # done or deleted since the tick claimed it: nothing to remind about
    if not item.incident.is_visible_to(item.owner):
        # Restricted since it was assigned (or the owner left its responders): the email would name it.
        logger.warning("Action item %s: reminder not sent, its owner cannot see %s.", item.pk, item.incident.reference)
        return 0
    address = item.owner.email or (item.owner_person.email if item.owner_person else "")
    overdue = kind == "overdue"
    subject = (
        f"Overdue action item ({item.incident.reference}): {item.title}"
        if overdue
        else f"Action item due {format_moment(item.due_date)} ({item.incident.reference}): {item.title}"
    )
    return _send_text(
        subject=subject,
        template="postmortems/emails/action_item_reminder.txt",
        context={"item": item, "overdue": overdue, "url": absolute_url(item.get_absolute_url())},
        to=[address],
        reader=item.owner,
    )


def send_schedule_reminder(postmortem_id: int) -> int:
    postmortem = PostMortem.objects.select_related("incident", "owner").filter(pk=postmortem_id).first()
    if postmortem is None or postmortem.meeting_at is not None:
        return 0  # scheduled since the tick claimed it
    commander = current_holder(postmortem.incident, Role.INCIDENT_COMMANDER) or postmortem.owner
    if commander is None:
        return 0
    if not postmortem.incident.is_visible_to(commander):
        logger.warning(
            "Post-mortem %s: schedule reminder not sent, %s cannot see %s.",
            postmortem.pk,
            commander.get_username(),
            postmortem.incident.reference,
        )
        return 0
    return _send_text(
        subject=f"Schedule the post-mortem for {postmortem.incident.reference}: {postmortem.incident.title}",
        template="postmortems/emails/schedule_reminder.txt",
        context={
            "postmortem": postmortem,
            "commander": commander,
            "url": absolute_url(postmortem.get_absolute_url()),
        },
        to=[commander.email],
        reader=commander,
    )
