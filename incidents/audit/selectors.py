"""Reads of the audit trail, filtered to what the reader may see."""

from django.db.models import QuerySet

from incidents import access
from incidents.models import Incident

from .models import AuditRecord, EvidenceExport


def audit_records_for(*, user) -> QuerySet[AuditRecord]:
    """Records visible to `user`: everything for the security team, otherwise nothing that belongs to a
    restricted incident the user cannot see (the same rule as Incident.objects.visible_to)."""
    records = AuditRecord.objects.select_related("actor")
    if access.is_security(user):
        return records
    hidden = Incident.objects.filter(is_restricted=True).exclude(pk__in=Incident.objects.visible_to(user).values("pk"))
    return records.exclude(incident_id__in=hidden.values("pk"))


def incident_audit_records(*, incident: Incident) -> QuerySet[AuditRecord]:
    return AuditRecord.objects.filter(incident_id=incident.pk).select_related("actor").order_by("id")


def evidence_exports(*, incident: Incident) -> QuerySet[EvidenceExport]:
    return EvidenceExport.objects.filter(incident_id=incident.pk).defer("content").order_by("-created_at", "-id")


def incident_references(records) -> dict[int, str]:
    """INC references for a page of records, in one query."""
    ids = {record.incident_id for record in records if record.incident_id}
    return {pk: f"INC-{number}" for pk, number in Incident.objects.filter(pk__in=ids).values_list("pk", "number")}
