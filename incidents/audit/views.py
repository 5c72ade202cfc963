"""Staff pages of the audit area: the audit trail (filters, CSV export) and evidence bundles."""

from __future__ import annotations

import csv
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from incidents.errors import DomainError
from incidents.models import Incident
from incidents.selectors import access_incident

from . import selectors, services
from .access import can_export_evidence, can_view_audit
from .evidence import verify_bundle
from .filters import AuditRecordFilter

PAGE_SIZE = 50
CSV_COLUMNS = [
    "id",
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "field",
    "incident_id",
    "before",
    "after",
    "source",
    "request_id",
    "client_request_id",
    "ip_address",
]


def _require_audit_reader(request):
    if not can_view_audit(request.user):
        raise HttpForbidden("The audit trail is for admins and the security team.")


@login_required
@require_GET
def records(request):
    _require_audit_reader(request)
    records_filter = AuditRecordFilter(request.GET, queryset=selectors.audit_records_for(user=request.user))
    page = Paginator(records_filter.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/records.html",
        {
            "filter": records_filter,
            "page": page,
            "references": selectors.incident_references(page.object_list),
            "query": query.urlencode(),
        },
    )


def _csv_safe(value) -> str:
    """Cells that a spreadsheet would run as a formula are prefixed with a quote (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def export_csv(request):
    _require_audit_reader(request)
    records_filter = AuditRecordFilter(request.GET, queryset=selectors.audit_records_for(user=request.user))
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for record in records_filter.qs.iterator(chunk_size=2000):
            yield writer.writerow([_csv_safe(getattr(record, column)) for column in CSV_COLUMNS])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def _evidence_incident(request, reference) -> Incident:
    """404 unless the user may see the incident AND export its evidence: outsiders learn nothing."""
    try:
        incident = access_incident(reference=reference, user=request.user)
    except Incident.DoesNotExist:
        raise Http404("No such incident.")
    if not can_export_evidence(request.user, incident):
        raise Http404("No such incident.")
    return incident


@login_required
@require_http_methods(["GET", "POST"])
def evidence(request, reference):
    incident = _evidence_incident(request, reference)
    if request.method == "POST":
        try:
            export = services.export_evidence(incident=incident, by=request.user)
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                f"Evidence bundle for {incident.reference} created. Manifest SHA-256: {export.manifest_sha256}",
            )
        return redirect("audit:evidence", reference=incident.reference)
    return render(
        request,
        "audit/evidence.html",
        {"incident": incident, "exports": selectors.evidence_exports(incident=incident)},
    )


@login_required
@require_GET
def evidence_download(request, reference, export_id):
    incident = _evidence_incident(request, reference)
    export = selectors.evidence_exports(incident=incident).defer(None).filter(pk=export_id).first()
    if export is None:
        raise Http404("No such evidence bundle.")
    response = HttpResponse(bytes(export.content), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["X-Evidence-Manifest-SHA256"] = export.manifest_sha256
    return response


MAX_BUNDLE_BYTES = 200 * 1024 * 1024


@login_required
@require_http_methods(["GET", "POST"])
def evidence_verify(request):
    """Upload a bundle: every file is checked against its manifest, and the manifest's fingerprint against the
    exports this portal recorded (or the fingerprint typed in)."""
    _require_audit_reader(request)
    context = {"expected": (request.POST.get("manifest_sha256") or "").strip().lower()}
    if request.method == "POST":
        upload = request.FILES.get("bundle")
        if upload is None:
            context["error"] = "Choose the bundle (.zip) to verify."
        elif upload.size > MAX_BUNDLE_BYTES:
            context["error"] = "That file is larger than any evidence bundle this portal produces."
        else:
            result = verify_bundle(upload.read(), expected_manifest_sha256=context["expected"] or None)
            export = services.recorded_export(result.manifest_sha256) if result.manifest_sha256 else None
            if result.ok and export is None and not context["expected"]:
                result.problems.append(f"manifest SHA-256 {result.manifest_sha256} was never recorded by this portal")
            context.update(result=result, export=export)
    return render(request, "audit/verify.html", context, status=400 if context.get("error") else 200)
