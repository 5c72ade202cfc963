"""State changes of the public status page: subscriptions (double opt-in, one-click unsubscribe), the outbox
of update emails, scheduled maintenance and manual service states. Views, admin and tasks call these."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone

from incidentportal.celery import registered_task
from incidents import access
from incidents.errors import DomainError, PermissionDenied
from incidents.models import Service, StatusUpdate, UpdateKind
from incidents.profiles.zones import format_moment

from . import emails, selectors, tokens
from .models import (
    ComponentState,
    DeliveryState,
    MaintenanceWindow,
    ServiceState,
    ServiceStatusOverride,
    Subscriber,
    UpdateDelivery,
    state_for_severity,
)

logger = logging.getLogger(__name__)

# Asking again for the same address within this interval sends nothing more (and says nothing different),
# so the form cannot be used to flood someone's mailbox.
CONFIRMATION_RESEND_INTERVAL = timedelta(minutes=10)
MAX_DELIVERY_ATTEMPTS = 5
RETRY_BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def _chosen_public_services(service_ids) -> list[Service]:
    ids = {int(pk) for pk in service_ids}
    services = list(selectors.public_services().filter(pk__in=ids).order_by("name"))
    if len(services) != len(ids):
        raise DomainError("Choose services from the list.", field="services")
    return services


# --- Subscriptions ----------------------------------------------------------------------------------------------


def request_subscription(*, email: str, all_services: bool, service_ids=()) -> None:
    """Start the double opt-in: remember the address (unconfirmed if new) and email it a signed link carrying
    the requested choice. Says nothing about whether the address was already subscribed, and an existing
    subscription changes only when its owner clicks the link."""
    email = normalise_email(email)
    if not email or "@" not in email:
        raise DomainError("Enter a valid email address.", field="email")
    services = [] if all_services else _chosen_public_services(service_ids)
    if not all_services and not services:
        raise DomainError("Choose at least one service, or all services.", field="services")
    with transaction.atomic():
        subscriber, _ = Subscriber.objects.select_for_update().get_or_create(email=email)
        now = timezone.now()
        if subscriber.confirmation_sent_at and now - subscriber.confirmation_sent_at < CONFIRMATION_RESEND_INTERVAL:
            return
        subscriber.confirmation_sent_at = now
        subscriber.save(update_fields=["confirmation_sent_at"])
        send_confirmation_email = registered_task("incidents.statuspage.tasks.send_confirmation_email")
        transaction.on_commit(
            partial(send_confirmation_email.delay, subscriber.pk, bool(all_services), [s.pk for s in services])
        )


def send_confirmation(*, subscriber_id: int, all_services: bool, service_ids) -> bool:
    """Mail the confirmation link (from the task). The token is made here, so it never sits in the broker."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.confirmation_sent_at is None:
        return False
    services = list(selectors.public_services().filter(pk__in=list(service_ids)).order_by("name"))
    emails.confirmation_email(
        subscriber,
        all_services=all_services,
        services=services,
        issued_at=subscriber.confirmation_sent_at,
    ).send()
    return True


@transaction.atomic
def confirm_subscription(*, token: str) -> Subscriber:
    """The second opt-in step: the link's owner confirms; their choice of services replaces any earlier one.
    Only the latest link sent works, and none survives an unsubscribe. Confirming twice is harmless."""
    try:
        request = tokens.read_confirm_token(token)
    except tokens.InvalidToken as error:
        raise DomainError(str(error), field="token")
    subscriber = Subscriber.objects.select_for_update().filter(pk=request.subscriber_id).first()
    if (
        subscriber is None
        or tokens.email_digest(subscriber.email) != request.email_digest
        or subscriber.confirmation_sent_at is None
        or tokens.stamp(subscriber.confirmation_sent_at) != request.issued
    ):
        raise DomainError("This confirmation link is no longer valid. Subscribe again to get a new one.", field="token")
    services = list(selectors.public_services().filter(pk__in=request.service_ids))
    if not request.all_services and not services:
        raise DomainError("The services you chose are no longer on the status page. Subscribe again.", field="token")
    if subscriber.confirmed_at is None or subscriber.unsubscribed_at is not None:
        subscriber.confirmed_at = timezone.now()
    subscriber.unsubscribed_at = None
    subscriber.all_services = request.all_services
    subscriber.save(update_fields=["confirmed_at", "unsubscribed_at", "all_services"])
    subscriber.services.set([] if request.all_services else services)
    return subscriber


@transaction.atomic
def unsubscribe(*, token: str) -> Subscriber:
    """One click, no login (RFC 8058). Stops every pending email to the address; idempotent."""
    try:
        subscriber_id, digest = tokens.read_unsubscribe_token(token)
    except tokens.InvalidToken as error:
        raise DomainError(str(error), field="token")
    subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber_id).first()
    if subscriber is None or tokens.email_digest(subscriber.email) != digest:
        raise DomainError("This unsubscribe link is no longer valid; the address is not subscribed.", field="token")
    if subscriber.unsubscribed_at is None:
        subscriber.unsubscribed_at = timezone.now()
    subscriber.confirmation_sent_at = None  # earlier confirmation links stop working
    subscriber.save(update_fields=["unsubscribed_at", "confirmation_sent_at"])
    subscriber.deliveries.filter(state=DeliveryState.PENDING).update(
        state=DeliveryState.SKIPPED, last_error="Unsubscribed before sending."
    )
    return subscriber


def purge_unconfirmed_subscribers(*, now: datetime | None = None) -> int:
    """Forget addresses nobody confirmed once their last link has expired: an unconfirmed address is only
    someone's claim, and keeping it forever serves no one."""
    cutoff = (now or timezone.now()) - timedelta(seconds=tokens.CONFIRM_MAX_AGE)
    stale = Subscriber.objects.filter(confirmed_at__isnull=True, created_at__lt=cutoff).exclude(
        confirmation_sent_at__gte=cutoff
    )
    _, per_model = stale.delete()
    return per_model.get(Subscriber._meta.label, 0)


# --- Update emails (outbox) ---------------------------------------------------------------------------------------


def notify_subscribers(update: StatusUpdate) -> int:
    """Called by incidents.services.updates.post_status_update inside its transaction once a published external update
    exists: writes one delivery row per interested confirmed subscriber (the outbox commits with the update)
    and wakes the sender after commit. Returns the number of deliveries written."""
    if not update.is_published or update.kind != UpdateKind.EXTERNAL or update.incident.is_restricted:
        return 0
    subscriber_ids = list(selectors.subscribers_for_update(update).values_list("pk", flat=True))
    now = timezone.now()
    UpdateDelivery.objects.bulk_create(
        [UpdateDelivery(update=update, subscriber_id=pk, created_at=now, next_attempt_at=now) for pk in subscriber_ids],
        ignore_conflicts=True,  # notify twice for one update: the unique row makes the second a no-op
        batch_size=1000,
    )
    if subscriber_ids:
        send_update_emails = registered_task("incidents.statuspage.tasks.send_update_emails")
        transaction.on_commit(partial(send_update_emails.delay, update.pk))
    return len(subscriber_ids)


def pending_delivery_ids(*, update_id: int | None = None, due_before: datetime | None = None, limit: int = 1000):
    deliveries = UpdateDelivery.objects.filter(state=DeliveryState.PENDING)
    if update_id is not None:
        deliveries = deliveries.filter(update_id=update_id)
    if due_before is not None:
        deliveries = deliveries.filter(next_attempt_at__lte=due_before)
    return list(deliveries.order_by("id").values_list("id", flat=True)[:limit])


def prepare_update_for_email(update_id: int) -> StatusUpdate | None:
    """The update with its public affected services (the update's own list, else the incident's), loaded once
    per batch of deliveries."""
    update = StatusUpdate.objects.select_related("incident").filter(pk=update_id).first()
    if update is not None:
        public = selectors.public_services().order_by("name")
        update.public_affected_services = list(public.filter(status_updates=update)) or list(
            public.filter(incidents=update.incident_id)
        )
    return update


def deliver_update_email(*, delivery_id: int, update: StatusUpdate | None = None) -> str:
    """Send one delivery at most once: the row is claimed with FOR UPDATE SKIP LOCKED and marked sent in the
    same transaction, so a duplicated or redelivered task finds it taken or done. Re-checks at send time that
    the update is still published, its incident still unrestricted and the subscriber still subscribed.
    `update` may be passed pre-loaded by prepare_update_for_email. Returns the resulting state ("" when there
    was nothing to do)."""
    with transaction.atomic():
        delivery = (
            UpdateDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscriber")
            .filter(pk=delivery_id, state=DeliveryState.PENDING)
            .first()
        )
        if delivery is None:
            return ""
        if update is None or update.pk != delivery.update_id:
            update = prepare_update_for_email(delivery.update_id)
        else:
            # Publication and restriction can change while a batch runs; re-read the two flags that matter.
            update.is_published, update.incident.is_restricted = (
                StatusUpdate.objects.filter(pk=update.pk).values_list("is_published", "incident__is_restricted").get()
            )
        subscriber = delivery.subscriber
        if not (
            subscriber.is_active
            and update.is_published
            and update.kind == UpdateKind.EXTERNAL
            and not update.incident.is_restricted
        ):
            delivery.state = DeliveryState.SKIPPED
            delivery.last_error = "No longer public or no longer subscribed."
            delivery.save(update_fields=["state", "last_error"])
            return delivery.state
        now = timezone.now()
        delivery.attempts += 1
        try:
            emails.update_email(update, subscriber).send()
        except Exception as error:  # any transport failure: record it and retry later, bounded
            logger.warning("status update email %s failed: %s", delivery.pk, error)
            delivery.last_error = f"{type(error).__name__}: {error}"[:1000]
            if delivery.attempts >= MAX_DELIVERY_ATTEMPTS:
                delivery.state = DeliveryState.FAILED
            else:
                delivery.next_attempt_at = now + RETRY_BACKOFF[min(delivery.attempts - 1, len(RETRY_BACKOFF) - 1)]
        else:
            delivery.state = DeliveryState.SENT
            delivery.sent_at = now
            delivery.last_error = ""
        delivery.save(update_fields=["state", "attempts", "sent_at", "next_attempt_at", "last_error"])
        return delivery.state


@transaction.atomic
def retry_failed_deliveries(*, delivery_ids, by) -> int:
    """Give failed emails another round of attempts (after fixing the mail server, say). Sent ones are never
    sent again. The tick picks them up within a minute."""
    if by is not None and not access.is_manager(by):
        raise PermissionDenied("Only incident managers can retry status emails.")
    now = timezone.now()
    return UpdateDelivery.objects.filter(pk__in=list(delivery_ids), state=DeliveryState.FAILED).update(
        state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, created_at=now - timedelta(minutes=5)
    )


# --- Scheduled maintenance and manual states -------------------------------------------------------------------


def require_maintenance_permission(by) -> None:
    if by is not None and not access.is_manager(by):
        raise PermissionDenied("Only incident managers can schedule maintenance.")


# A window silences automatic incident declaration for its services: a mistyped end date must not do that for
# months. Starts are typed within a year of today (either side); an unchanged start of an old window stays valid.
MAINTENANCE_MAX_DURATION = timedelta(days=14)
MAINTENANCE_START_HORIZON = timedelta(days=366)


def validate_maintenance_window(*, title: str, starts_at, ends_at, services, current_starts_at=None) -> str:
    title = (title or "").strip()
    if not title:
        raise DomainError("Give the maintenance a title.", field="title")
    if starts_at is None:
        raise DomainError("Say when the maintenance starts.", field="starts_at")
    if ends_at is None:
        raise DomainError("Say when the maintenance ends.", field="ends_at")
    if ends_at <= starts_at:
        raise DomainError("The maintenance must end after it starts.", field="ends_at")
    if ends_at - starts_at > MAINTENANCE_MAX_DURATION:
        raise DomainError(
            f"A maintenance window can last at most {MAINTENANCE_MAX_DURATION.days} days: while it runs, alerts for "
            "its services declare no incidents. Schedule longer work as several windows.",
            field="ends_at",
        )
    if starts_at != current_starts_at:
        now = timezone.now()
        if not now - MAINTENANCE_START_HORIZON <= starts_at <= now + MAINTENANCE_START_HORIZON:
            raise DomainError(
                f"The maintenance must start between {format_moment(now - MAINTENANCE_START_HORIZON)} and "
                f"{format_moment(now + MAINTENANCE_START_HORIZON)}.",
                field="starts_at",
            )
    if not services:
        raise DomainError("Choose the services under maintenance.", field="services")
    return title


@transaction.atomic
def schedule_maintenance(*, title: str, description: str = "", services, starts_at, ends_at, by) -> MaintenanceWindow:
    """Announce a maintenance window. While it runs the services show "Under maintenance" (unless an incident
    says worse) and alerts for them are recorded without declaring incidents."""
    require_maintenance_permission(by)
    services = list(services)
    title = validate_maintenance_window(title=title, starts_at=starts_at, ends_at=ends_at, services=services)
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        title=title[:200],
        description=(description or "").strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=by,
        created_at=now,
        updated_at=now,
    )
    window.services.set(services)
    return window


@transaction.atomic
def change_maintenance(
    *, window: MaintenanceWindow, title: str, description: str = "", services, starts_at, ends_at, by
) -> MaintenanceWindow:
    require_maintenance_permission(by)
    services = list(services)
    window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
    title = validate_maintenance_window(
        title=title, starts_at=starts_at, ends_at=ends_at, services=services, current_starts_at=window.starts_at
    )
    window.title = title[:200]
    window.description = (description or "").strip()
    window.starts_at = starts_at
    window.ends_at = ends_at
    window.updated_at = timezone.now()
    window.save()
    window.services.set(services)
    return window


@transaction.atomic
def cancel_maintenance(*, window: MaintenanceWindow, by) -> str:
    """Call off an announced window: one that has not started disappears, one that is running ends now (and
    alerts declare incidents again), one that is over stays in the history. Returns "deleted" or "ended"."""
    require_maintenance_permission(by)
    window = MaintenanceWindow.objects.select_for_update().filter(pk=window.pk).first()
    if window is None:
        raise DomainError("That maintenance window no longer exists.", field="window")
    now = timezone.now()
    if window.ends_at <= now:
        raise DomainError(f"{window.title} is already over; it stays in the history.", field="window")
    if window.starts_at > now:
        window.delete()
        return "deleted"
    window.ends_at = now
    window.updated_at = now
    window.save(update_fields=["ends_at", "updated_at"])
    return "ended"


def _require_communicator(by) -> None:
    # Updating the status page is the Communications Lead's job; any responder may hold that role.
    if by is not None and not access.can_respond(by):
        raise PermissionDenied("You need the responder role to change the status page.")


@transaction.atomic
def set_service_override(*, service: Service, state: str, message: str = "", by) -> ServiceStatusOverride:
    """Pin a public service's state by hand (it wins over incidents and maintenance until cleared)."""
    _require_communicator(by)
    if state not in ServiceState.values:
        raise DomainError(f"Unknown service state {state!r}.", field="state")
    if not service.is_public:
        raise DomainError(f"{service.name} is not on the public status page.", field="service")
    override, _ = ServiceStatusOverride.objects.select_for_update().update_or_create(
        service=service,
        defaults={"state": state, "message": (message or "").strip()[:300], "set_by": by, "updated_at": timezone.now()},
    )
    return override


@transaction.atomic
def clear_service_override(*, service: Service, by) -> bool:
    """Back to the state derived from incidents and maintenance."""
    _require_communicator(by)
    deleted, _ = ServiceStatusOverride.objects.filter(service=service).delete()
    return bool(deleted)


# --- Component states of status-page updates ----------------------------------------------------------------------


def default_component_state(*, incident, status: str) -> ServiceState:
    """What the form offers for an affected service: operational in a Resolved update, else the severity's state."""
    if status == "resolved":
        return ServiceState.OPERATIONAL
    return state_for_severity(incident.severity.level)


def choose_component_states(*, incident, status: str, affected_services, component_states=None) -> dict:
    """The public state of each service a status-page update names, validated: {Service: ServiceState}.
    `component_states` maps services (or their pks) to states as the Communications Lead chose them; without it
    the affected services get the default for the severity (operational when resolving). Internal services are
    never given a public state."""
    chosen: dict[int, ServiceState] = {}
    if component_states:
        for key, state in component_states.items():
            if state in ("", None):
                continue
            if state not in ServiceState.values:
                raise DomainError(f"Unknown service state {state!r}.", field="component_states")
            chosen[int(getattr(key, "pk", key))] = ServiceState(state)
    default = default_component_state(incident=incident, status=status)
    for service in affected_services:
        chosen.setdefault(service.pk, default)
    services = {service.pk: service for service in Service.objects.filter(pk__in=list(chosen))}
    if len(services) != len(chosen):
        raise DomainError("Choose services from the catalogue.", field="component_states")
    return {services[pk]: state for pk, state in chosen.items() if services[pk].is_public}


def record_component_states(*, update: StatusUpdate, states: dict) -> list[ComponentState]:
    """Called by incidents.services.updates.post_status_update inside its transaction, for external updates."""
    return ComponentState.objects.bulk_create(
        ComponentState(update=update, service=service, state=state) for service, state in states.items()
    )
