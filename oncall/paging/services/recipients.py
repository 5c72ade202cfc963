"""Whom a page reaches and how: escalation targets resolved to people and hotlines at a given time (one batch's
lookups in a fixed number of queries), a person's notification rules turned into outbox rows, and the test page a
person sends themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from incidents.errors import DomainError
from oncall import selectors as oncall_selectors
from oncall import services as oncall_services
from oncall.models import (
    ContactMethod,
    EscalationLevel,
    EscalationTarget,
    Hotline,
    NotificationRule,
    Person,
    Rotation,
    Team,
)

from .. import channels
from ..models import Channel, Notification, Page, WebhookEndpoint

# For a person with no notification rules: what the directory entry allows, the seeded defaults' shape.
DEFAULT_RULES = ((Channel.SMS, timedelta(0)), (Channel.EMAIL, timedelta(0)), (Channel.VOICE, timedelta(minutes=3)))


@dataclass(frozen=True)
class Recipient:
    """Whom one escalation target reaches at a given time. `person` None + `hotline` None = nobody (a gap)."""

    label: str
    person: Person | None = None
    hotline: Hotline | None = None


class EscalationContext:
    """What a batch of escalations needs, loaded with a fixed number of queries however many pages it holds:
    policies' levels and targets, the teams' rotation plans, team leads, contact methods, webhook endpoints."""

    def __init__(self, now: datetime):
        self.now = now
        self._levels: dict[int, list[EscalationLevel]] = {}
        self._plans: dict[int, list] = {}
        self._teams: dict[int, Team] = {}
        self._rules: dict[int, list[NotificationRule]] = {}
        self._endpoints: list[WebhookEndpoint] | None = None

    def levels(self, policy_id: int | None) -> list[EscalationLevel]:
        if policy_id is None:
            return []
        if policy_id not in self._levels:
            self._load_levels([policy_id])
        return self._levels[policy_id]

    def _load_levels(self, policy_ids) -> None:
        missing = [pk for pk in policy_ids if pk is not None and pk not in self._levels]
        if not missing:
            return
        for pk in missing:
            self._levels[pk] = []
        levels = (
            EscalationLevel.objects.filter(policy_id__in=missing)
            .order_by("policy_id", "position", "pk")
            .prefetch_related("targets__person", "targets__hotline__person", "targets__team__team_lead")
        )
        for level in levels:
            self._levels[level.policy_id].append(level)

    def prepare(self, pages: list[Page], *, window_start: datetime | None = None) -> None:
        """Load everything the pages' escalations can need: 3 queries for levels, 3 for rotations, 1 for teams,
        1 for notification rules (with their contact methods), 1 for webhook endpoints."""
        self._load_levels({page.policy_id for page in pages})
        team_ids = {page.team_id for page in pages if page.team_id}
        for page in pages:
            for level in self.levels(page.policy_id):
                for target in level.targets.all():
                    if target.team_id:
                        team_ids.add(target.team_id)
        team_ids -= set(self._teams)
        start = min([window_start or self.now, self.now]) - timedelta(hours=1)
        if team_ids:
            self._teams.update(Team.objects.select_related("team_lead").in_bulk(team_ids))
            plans = oncall_selectors.rotation_plans(
                Rotation.objects.filter(is_active=True, team_id__in=team_ids).order_by("name"),
                start=start,
                end=self.now + timedelta(days=1),
            )
            for team_id in team_ids:
                self._plans.setdefault(team_id, [])
            for plan in plans:
                self._plans[plan.rotation.team_id].append(plan)
        people = set()
        for plans in self._plans.values():
            for plan in plans:
                for members in plan.members.values():
                    people.update(person.pk for person in members)
                for override_timeline in plan._overrides.values():
                    people.update(override.person_id for override in override_timeline.overrides)
        for team in self._teams.values():
            if team.team_lead_id:
                people.add(team.team_lead_id)
        for page in pages:
            for level in self.levels(page.policy_id):
                for target in level.targets.all():
                    if target.person_id:
                        people.add(target.person_id)
                    if target.hotline_id and target.hotline.person_id:
                        people.add(target.hotline.person_id)
        self.load_methods(people)

    def load_methods(self, person_ids) -> None:
        """The people's notification rules whose contact method is active, earliest first, in one query."""
        missing = {pk for pk in person_ids if pk and pk not in self._rules}
        if not missing:
            return
        for pk in missing:
            self._rules[pk] = []
        rules = (
            NotificationRule.objects.filter(person_id__in=missing, contact_method__is_active=True)
            .select_related("contact_method")
            .order_by("person_id", "delay_minutes", "contact_method__position", "pk")
        )
        for rule in rules:
            self._rules[rule.person_id].append(rule)

    def rules(self, person: Person) -> list[NotificationRule]:
        if person.pk not in self._rules:
            self.load_methods([person.pk])
        return self._rules[person.pk]

    def team(self, team_id: int | None) -> Team | None:
        if team_id is None:
            return None
        if team_id not in self._teams:
            team = Team.objects.select_related("team_lead").filter(pk=team_id).first()
            if team is None:
                return None
            self._teams[team_id] = team
        return self._teams[team_id]

    def plans(self, team_id: int) -> list:
        if team_id not in self._plans:
            self._plans[team_id] = [
                plan
                for plan in oncall_selectors.rotation_plans(
                    Rotation.objects.filter(is_active=True, team_id=team_id).order_by("name"),
                    start=self.now - timedelta(days=1),
                    end=self.now + timedelta(days=1),
                )
            ]
        return self._plans[team_id]

    def endpoints(self) -> list[WebhookEndpoint]:
        if self._endpoints is None:
            self._endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
        return self._endpoints

    def resolve(self, target: EscalationTarget, at: datetime, paged_team_id: int | None) -> Recipient:
        kind = target.kind
        if kind == EscalationTarget.Kind.PERSON:
            return Recipient(str(target.person), person=target.person)
        if kind == EscalationTarget.Kind.HOTLINE:
            return Recipient(f"{target.hotline} (hotline)", person=target.hotline.person, hotline=target.hotline)
        team = self.team(target.team_id or paged_team_id)
        if team is None:
            return Recipient(f"{target.describe()}: no team owns the affected services")
        if kind == EscalationTarget.Kind.TEAM_LEAD:
            if team.team_lead is None:
                return Recipient(f"Team lead of {team}: none set")
            return Recipient(f"{team.team_lead} (team lead of {team})", person=team.team_lead)
        person = oncall_selectors.team_on_call(self.plans(team.pk), target.slot, at)
        label = f"{target.get_slot_display()} on-call of {team}"
        if person is None:
            return Recipient(f"{label}: nobody on call")
        return Recipient(f"{person} ({label})", person=person)


def _person_address(person: Person, channel: str) -> str:
    if channel == Channel.EMAIL:
        return person.email
    if channel in (Channel.SMS, Channel.VOICE):
        return person.phone
    if channel == Channel.CHAT:
        return person.chat_handle
    return ""


def person_notifications(
    person: Person, *, rules: list[NotificationRule], at: datetime, key_prefix: str, label: str = "", **fields
) -> list[Notification]:
    """Outbox rows for one person: one per notification rule, due `delay_minutes` after `at`. Every row fires at
    its time unless the page is acknowledged first; a failed or unanswered one brings the next forward."""
    rows = []
    options = [
        (rule.pk, rule.contact_method, rule.contact_method.channel, rule.delay)
        for rule in rules
        if rule.contact_method.is_active
    ]
    if not options:
        # No rules recorded (a person created outside the admin): email and SMS at once, a call after 3 minutes,
        # from whatever the directory entry holds, is better than silence.
        options = [(None, None, channel, delay) for channel, delay in DEFAULT_RULES]
    for rule_id, method, channel, delay in options:
        address = (method.address if method is not None else "") or _person_address(person, channel)
        if method is None and not address:
            continue
        rows.append(
            Notification(
                idempotency_key=f"{key_prefix}:p{person.pk}:"
                + (f"r{rule_id}" if rule_id else f"d{channel}{int(delay.total_seconds())}"),
                person=person,
                rule_id=rule_id,
                recipient=(label or str(person))[:200],
                channel=channel,
                address=address or "",
                method_position=int(delay.total_seconds() // 60),
                status=Notification.Status.PENDING,
                scheduled_for=at + delay,
                ack_nonce=Notification.new_nonce(),
                ack_code=Notification.new_ack_code(),
                **fields,
            )
        )
    return rows


def hotline_notifications(hotline: Hotline, *, at: datetime, key_prefix: str, **fields) -> list[Notification]:
    rows = []
    for channel, address in ((Channel.VOICE, hotline.number), (Channel.EMAIL, hotline.email)):
        if address:
            rows.append(
                Notification(
                    idempotency_key=f"{key_prefix}:h{hotline.pk}:{channel}",
                    hotline=hotline,
                    person=hotline.person,
                    recipient=f"{hotline} (hotline)",
                    channel=channel,
                    address=address,
                    scheduled_for=at,
                    ack_nonce=Notification.new_nonce(),
                    ack_code=Notification.new_ack_code(),
                    **fields,
                )
            )
    return rows


def send_test_page(*, contact_method: ContactMethod, by) -> channels.Handed:
    """ "Send me a test page": one message through the contact method's real channel and backend, now, outside
    the outbox (no incident, nothing to acknowledge). Raises DomainError with the channel's refusal."""
    person = contact_method.person
    if not oncall_services.can_edit_rules(by, person):
        raise DomainError("Only the person or a manager can send a test page.")
    address = contact_method.resolved_address
    text = (
        f"Test page for {person} from the incident portal by {contact_method.get_channel_display()}. "
        f"Nothing is wrong; no reply is needed. {settings.SITE_URL}"
    )
    message = channels.OutgoingMessage(
        channel=contact_method.channel,
        address=address,
        recipient=str(person),
        subject="Test page from the incident portal",
        text=text,
        data={"event": "test", "spoken": f"Test page for {person}. Nothing is wrong", "test": True},
    )
    try:
        return channels.send(message) or channels.Handed()
    except channels.DeliveryError as error:
        raise DomainError(f"The test page was not sent: {error}", field="contact_method") from error


def when_sent(row: Notification, at: datetime) -> str:
    """The channel of an outbox row and how long after `at` it goes out: "SMS", "Voice call after 3 min"."""
    minutes = int((row.scheduled_for - at).total_seconds() // 60) if row.scheduled_for else 0
    return row.get_channel_display() + (f" after {minutes} min" if minutes > 0 else "")
