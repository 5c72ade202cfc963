"""Evidence bundles: an incident and everything recorded about it, as a zip of JSON files plus a manifest.

MANIFEST.sha256 has one `<sha256>  <file name>` line per file (the `sha256sum` format, so `sha256sum -c
MANIFEST.sha256` works on an unzipped bundle too). The SHA-256 of the manifest itself is the bundle's
fingerprint: it is shown to the person exporting, stored in the append-only audit trail, and `verify_bundle`
checks every file against the manifest and the manifest against the recorded fingerprint.

The bundle is generic: besides the incident's own tables it includes every model anywhere in the project that
points at the incident (alerts, pages, post-mortems ...) and the models pointing at those, one hop further.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.db import models

from incidents.models import Incident

from .models import AuditRecord
from .recorder import REDACTED, SENSITIVE_FIELD, _Encoder

FORMAT = "incident-portal-evidence/1"
MANIFEST = "MANIFEST.sha256"
MAX_ROWS_PER_MODEL = 50_000

# The incident's own tables get stable, readable file names; anything else lands in related/.
NAMED_FILES = {
    "incidents.timelineentry": "timeline.json",
    "incidents.statusupdate": "status_updates.json",
    "incidents.roleassignment": "roles.json",
    "incidents.incidentresponder": "responders.json",
    "incidents.checklistitem": "checklist.json",
    "incidents.fivewhys": "five_whys.json",
    "incidents.incidentrunbook": "runbooks.json",
}


def _dumps(data) -> bytes:
    return (json.dumps(data, cls=_Encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _file_metadata(file) -> dict:
    meta = {"name": file.name or "", "size": None, "sha256": None}
    if not file:
        return meta
    try:
        meta["size"] = file.size
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
        meta["sha256"] = digest.hexdigest()
    except (OSError, ValueError):
        meta["missing"] = True  # referenced but not readable: say so rather than fail the export
    return meta


def serialize_row(obj: models.Model, attachments: list) -> dict:
    row = {"pk": obj.pk}
    for f in obj._meta.concrete_fields:
        value = f.value_from_object(obj)
        if isinstance(f, models.FileField):
            meta = _file_metadata(getattr(obj, f.name))
            attachments.append({"model": obj._meta.label_lower, "pk": obj.pk, "field": f.name, **meta})
            value = meta["name"]
        elif SENSITIVE_FIELD.search(f.name) and value not in (None, ""):
            value = REDACTED
        row[f.name] = value
    for f in obj._meta.many_to_many:
        row[f.name] = sorted(getattr(obj, f.name).values_list("pk", flat=True))
    return row


def _relations_to(model) -> list[tuple[type, str]]:
    """(model, field name) of every concrete FK / one-to-one in the project pointing at `model`."""
    found = []
    for candidate in apps.get_models():
        for f in candidate._meta.concrete_fields:
            if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is model:
                found.append((candidate, f.name))
    return found


def collect_related(incident: Incident) -> dict[str, list[models.Model]]:
    """Rows pointing at the incident, and rows pointing at those (one hop), keyed by app_label.model."""
    collected: dict[str, list[models.Model]] = {}
    first_hop = []
    for model, name in _relations_to(Incident):
        if model._meta.app_label == "audit":
            continue
        rows = list(model._base_manager.filter(**{name: incident}).order_by("pk")[:MAX_ROWS_PER_MODEL])
        collected.setdefault(model._meta.label_lower, []).extend(rows)
        if rows:
            first_hop.append((model, [row.pk for row in rows]))
    for parent, pks in first_hop:
        for model, name in _relations_to(parent):
            if model is Incident or model._meta.app_label == "audit":
                continue
            label = model._meta.label_lower
            seen = {row.pk for row in collected.get(label, [])}
            rows = model._base_manager.filter(**{f"{name}__in": pks}).order_by("pk")[:MAX_ROWS_PER_MODEL]
            collected.setdefault(label, []).extend(row for row in rows if row.pk not in seen)
    return collected


def build_bundle(*, incident: Incident, generated_by: str, generated_at: datetime) -> tuple[bytes, str, dict]:
    """The zip bytes, the manifest's SHA-256 and {file name: sha256}. Deterministic for the same data."""
    attachments: list[dict] = []
    files: dict[str, bytes] = {}
    files["incident.json"] = _dumps(serialize_row(incident, attachments))
    for label, rows in sorted(collect_related(incident).items()):
        name = NAMED_FILES.get(label, f"related/{label}.json")
        files[name] = _dumps([serialize_row(row, attachments) for row in rows])
    audit = AuditRecord.objects.filter(incident_id=incident.pk).order_by("id")
    files["audit.json"] = _dumps(
        [
            {
                "id": r.id,
                "occurred_at": r.occurred_at,
                "actor_id": r.actor_id,
                "actor_username": r.actor_username,
                "action": r.action,
                "object_type": r.object_type,
                "object_id": r.object_id,
                "object_repr": r.object_repr,
                "field": r.field,
                "before": r.before,
                "after": r.after,
                "source": r.source,
                "request_id": r.request_id,
                "ip_address": r.ip_address,
            }
            for r in audit.iterator(chunk_size=2000)
        ]
    )
    files["attachments.json"] = _dumps(attachments)
    files["bundle.json"] = _dumps(
        {
            "format": FORMAT,
            "incident": incident.reference,
            "incident_pk": incident.pk,
            "is_restricted": incident.is_restricted,
            "generated_at": generated_at,
            "generated_by": generated_by,
            "files": sorted(files),
        }
    )
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    manifest = "".join(f"{hashes[name]}  {name}\n" for name in sorted(files)).encode()
    manifest_sha256 = hashlib.sha256(manifest).hexdigest()

    buffer = io.BytesIO()
    stamp = generated_at.utctimetuple()[:6]
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in [*sorted(files), MANIFEST]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, manifest if name == MANIFEST else files[name])
    return buffer.getvalue(), manifest_sha256, hashes


@dataclass
class Verification:
    manifest_sha256: str = ""
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(data: bytes, *, expected_manifest_sha256: str | None = None) -> Verification:
    """Check a bundle is unaltered: every file matches the manifest, nothing is missing or added, names are
    not duplicated, and (when given) the manifest's SHA-256 is the one recorded at export time."""
    result = Verification()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        result.problems.append("not a zip file")
        return result
    with archive:
        names = archive.namelist()
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            result.problems.append(f"duplicated entries: {', '.join(duplicates)}")
        if MANIFEST not in names:
            result.problems.append(f"{MANIFEST} is missing")
            return result
        manifest = archive.read(MANIFEST)
        result.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        if expected_manifest_sha256 and result.manifest_sha256 != expected_manifest_sha256.strip().lower():
            result.problems.append(
                f"manifest SHA-256 is {result.manifest_sha256}, the recorded one is {expected_manifest_sha256}"
            )
        listed = {}
        for number, line in enumerate(manifest.decode("utf-8", "replace").splitlines(), start=1):
            digest, sep, name = line.partition("  ")
            if not sep or len(digest) != 64 or not name:
                result.problems.append(f"{MANIFEST} line {number} is malformed")
                continue
            listed[name] = digest
        for name, digest in sorted(listed.items()):
            if name not in names:
                result.problems.append(f"{name} is listed in the manifest but missing")
                continue
            actual = hashlib.sha256(archive.read(name)).hexdigest()
            result.files_checked += 1
            if actual != digest:
                result.problems.append(f"{name} was altered (sha256 {actual}, manifest says {digest})")
        for name in sorted(set(names) - set(listed) - {MANIFEST}):
            result.problems.append(f"{name} is not in the manifest")
    return result
