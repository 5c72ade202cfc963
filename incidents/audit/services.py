"""Writes of the audit area: exporting an evidence bundle."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from incidents import timeline
from incidents.errors import PermissionDenied
from incidents.models import Incident

from .access import can_export_evidence
from .evidence import build_bundle
from .models import AuditAction, EvidenceExport
from .recorder import record_change


@transaction.atomic
def export_evidence(*, incident: Incident, by) -> EvidenceExport:
    """Build the incident's evidence bundle, keep it, and record its manifest SHA-256 in the audit trail and
    on the timeline, all in one transaction. The incident row is locked while the bundle is built, so every
    service that changes the incident waits and the bundle is one consistent picture."""
    if not can_export_evidence(by, incident):
        raise PermissionDenied("Only the security team, admins and the Incident Commander can export evidence.")
    incident = Incident.objects.select_for_update().select_related("severity").get(pk=incident.pk)
    now = timezone.now()
    username = by.get_username() if by is not None else ""
    content, manifest_sha256, hashes = build_bundle(incident=incident, generated_by=username, generated_at=now)
    export = EvidenceExport.objects.create(
        incident_id=incident.pk,
        incident_reference=incident.reference,
        created_at=now,
        created_by=by,
        created_by_username=username,
        manifest_sha256=manifest_sha256,
        size=len(content),
        content=content,
    )
    record_change(
        action=AuditAction.EVIDENCE_EXPORTED,
        obj=incident,
        after={"manifest_sha256": manifest_sha256, "export_id": export.pk, "size": len(content), "files": hashes},
        actor=by,
    )
    timeline.record(timeline.evidence_exported(incident, export=export, by=by, username=username))
    return export


def recorded_export(manifest_sha256: str) -> EvidenceExport | None:
    """The export that produced this manifest, if this portal made it."""
    return EvidenceExport.objects.defer("content").filter(manifest_sha256=manifest_sha256.strip().lower()).first()
