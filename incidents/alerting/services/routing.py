"""Routing: which service and severity policy a new alert group gets, and whether it may declare an incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from incidents.models import Service
from incidents.statuspage.selectors import is_under_maintenance

from ..models import Integration, RoutingRule, Severity
from ..parsers import AlertEventIn

# Without a rule naming a severity policy, an auto-declared incident takes its level from the alert's severity.
DEFAULT_POLICY_FOR_SEVERITY = {
    Severity.CRITICAL: "P1",
    Severity.ERROR: "P2",
    Severity.WARNING: "P3",
    Severity.INFO: "P3",
}
SEVERITY_ORDER = [Severity.CRITICAL, Severity.ERROR, Severity.WARNING, Severity.INFO]
RETRIES_ON_DEADLOCK = 3


@dataclass(frozen=True)
class Route:
    service_id: int | None
    policy_level: str
    action: str


def should_auto_declare(integration: Integration, service: Service | None, at: datetime) -> bool:
    """The one place that decides whether an alert may declare an incident on its own (the routing rule has
    already said "declare"). Inside a scheduled maintenance window of the service, alerts only attach or record."""
    if not integration.is_active:
        return False
    return service is None or not is_under_maintenance(service, at)


def route_for(event: AlertEventIn, *, integration: Integration, rules: list[RoutingRule], services: dict) -> Route:
    for rule in rules:
        if rule.matches(labels=event.labels, severity=event.severity):
            service = rule.service_id or getattr(services.get(event.service_slug), "pk", None)
            level = (
                rule.severity_policy.level if rule.severity_policy_id else DEFAULT_POLICY_FOR_SEVERITY[event.severity]
            )
            return Route(service or integration.default_service_id, level, rule.action)
    service = getattr(services.get(event.service_slug), "pk", None) or integration.default_service_id
    return Route(service, DEFAULT_POLICY_FOR_SEVERITY[event.severity], integration.default_action)


def rules_of(integration: Integration) -> list[RoutingRule]:
    rules = getattr(integration, "cached_rules", None)
    if rules is None:
        rules = list(integration.rules.select_related("severity_policy").order_by("position", "id"))
        integration.cached_rules = rules
    return rules
