"""Evidence bundles: complete, fingerprinted, recorded in the audit trail, verifiable, and only for the
security team, admins and the incident's Incident Commander."""

import hashlib
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from incidents.audit.evidence import MANIFEST, verify_bundle
from incidents.audit.models import AuditAction, AuditRecord, EvidenceExport
from incidents.audit.services import export_evidence
from incidents.errors import PermissionDenied
from incidents.models import Role
from incidents.services.checklist import tick_checklist_item
from incidents.services.entries import add_timeline_entry, record_five_whys
from incidents.services.roles import add_responder
from incidents.services.updates import post_status_update
from tests.factories import ResponderFactory, SecurityFactory, UserFactory, declare

pytestmark = pytest.mark.django_db


@pytest.fixture
def security():
    return SecurityFactory()


@pytest.fixture
def breach(security):
    incident = declare(by=security, title="Customer data exfiltration", is_restricted=True, level="P0")
    add_timeline_entry(incident=incident, by=security, body="Rotated the leaked **API keys**.")
    post_status_update(
        incident=incident, kind="internal", status="investigating", by=security, what_we_know="Keys leaked"
    )
    tick_checklist_item(item=incident.checklist_items.first(), by=security)
    record_five_whys(incident=incident, problem="Keys leaked", whys=["Committed to git"], root_cause="", by=security)
    return incident


def bundle_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bundle_round_trip_holds_everything_and_is_recorded(breach, security):
    export = export_evidence(incident=breach, by=security)
    data = bytes(export.content)
    files = bundle_files(data)
    assert {
        "incident.json",
        "timeline.json",
        "status_updates.json",
        "roles.json",
        "responders.json",
        "checklist.json",
        "five_whys.json",
        "audit.json",
        "attachments.json",
        "bundle.json",
        MANIFEST,
    } <= set(files)
    assert json.loads(files["incident.json"])["title"] == "Customer data exfiltration"
    assert any("Rotated the leaked" in e["body"] for e in json.loads(files["timeline.json"]))
    assert json.loads(files["roles.json"])[0]["role"] == Role.INCIDENT_COMMANDER
    assert any(c["checked_at"] for c in json.loads(files["checklist.json"]))
    audit = json.loads(files["audit.json"])
    assert {"incidents.incident", "incidents.timelineentry", "incidents.statusupdate"} <= {
        r["object_type"] for r in audit
    }
    # The manifest is sha256sum's format and its own hash is the fingerprint.
    manifest = files[MANIFEST].decode()
    for line in manifest.splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha256(files[name]).hexdigest() == digest
    assert hashlib.sha256(files[MANIFEST]).hexdigest() == export.manifest_sha256

    result = verify_bundle(data, expected_manifest_sha256=export.manifest_sha256)
    assert result.ok, result.problems
    assert result.files_checked == len(files) - 1

    recorded = AuditRecord.objects.get(action=AuditAction.EVIDENCE_EXPORTED, incident_id=breach.pk)
    assert recorded.after["manifest_sha256"] == export.manifest_sha256 and recorded.actor == security
    assert breach.timeline.filter(body__contains=export.manifest_sha256).exists()


def test_bundle_includes_alerts_attached_to_the_incident(breach, security):
    from django.utils import timezone

    from incidents.alerting.models import AlertEvent, AlertGroup
    from incidents.alerting.services.integrations import create_integration

    integration, _ = create_integration(kind="generic", name="Evidence monitor")
    now = timezone.now()
    group = AlertGroup.objects.create(
        integration=integration,
        dedup_key="db-down",
        summary="DB down",
        incident=breach,
        first_seen_at=now,
        last_seen_at=now,
    )
    AlertEvent.objects.create(integration=integration, group=group, action="trigger", dedup_key="db-down", summary="x")
    files = bundle_files(bytes(export_evidence(incident=breach, by=security).content))
    assert [g["dedup_key"] for g in json.loads(files["related/alerting.alertgroup.json"])] == ["db-down"]
    assert [e["group"] for e in json.loads(files["related/alerting.alertevent.json"])] == [group.pk]


def test_altered_file_is_detected(breach, security):
    export = export_evidence(incident=breach, by=security)
    files = bundle_files(bytes(export.content))
    files["timeline.json"] = files["timeline.json"].replace(b"Rotated", b"Ignored")
    result = verify_bundle(rezip(files), expected_manifest_sha256=export.manifest_sha256)
    assert not result.ok
    assert any("timeline.json was altered" in problem for problem in result.problems)


def test_rewritten_manifest_is_detected_against_the_recorded_fingerprint(breach, security, tmp_path):
    export = export_evidence(incident=breach, by=security)
    files = bundle_files(bytes(export.content))
    files["timeline.json"] = b"[]\n"
    files[MANIFEST] = "".join(
        f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files) if name != MANIFEST
    ).encode()
    forged = rezip(files)
    assert verify_bundle(forged).ok  # internally consistent ...
    assert not verify_bundle(forged, expected_manifest_sha256=export.manifest_sha256).ok  # ... but not the original
    path = tmp_path / "forged.zip"
    path.write_bytes(forged)
    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_evidence", str(path))  # its fingerprint was never recorded


def test_added_missing_and_duplicated_files_are_detected(breach, security):
    export = export_evidence(incident=breach, by=security)
    files = bundle_files(bytes(export.content))
    extra = dict(files, **{"notes.txt": b"planted"})
    assert any("notes.txt is not in the manifest" in p for p in verify_bundle(rezip(extra)).problems)
    missing = {name: data for name, data in files.items() if name != "audit.json"}
    assert any("audit.json is listed in the manifest but missing" in p for p in verify_bundle(rezip(missing)).problems)
    buffer = io.BytesIO(bytes(export.content))
    with zipfile.ZipFile(buffer, "a") as archive, pytest.warns(UserWarning):
        archive.writestr("timeline.json", b"[]")
    assert any("duplicated" in p for p in verify_bundle(buffer.getvalue()).problems)
    assert verify_bundle(b"not a zip").problems == ["not a zip file"]


def test_verify_command_accepts_an_intact_recorded_bundle(breach, security, tmp_path, capsys):
    export = export_evidence(incident=breach, by=security)
    path = tmp_path / export.filename
    path.write_bytes(bytes(export.content))
    call_command("verify_evidence", str(path))
    out = capsys.readouterr().out
    assert "OK" in out and export.manifest_sha256 in out and breach.reference in out
    call_command("verify_evidence", str(path), manifest_sha256=export.manifest_sha256)


def test_only_security_admins_and_commander_may_export(security):
    commander = ResponderFactory()
    incident = declare(by=commander, title="Phishing wave")
    bystander = ResponderFactory()
    add_responder(incident=incident, user=bystander, by=commander)
    with pytest.raises(PermissionDenied):
        export_evidence(incident=incident, by=bystander)
    assert export_evidence(incident=incident, by=commander).manifest_sha256
    assert export_evidence(incident=incident, by=UserFactory(groups=["admin"])).manifest_sha256
    assert export_evidence(incident=incident, by=security).manifest_sha256
    assert EvidenceExport.objects.filter(incident_id=incident.pk).count() == 3


def test_evidence_page_and_download(client, breach, security):
    url = f"/audit/evidence/{breach.reference}/"
    client.force_login(security)
    assert client.get(url).status_code == 200
    response = client.post(url, follow=True)
    export = EvidenceExport.objects.get(incident_id=breach.pk)
    assert export.manifest_sha256 in response.content.decode()  # shown to the user
    download = client.get(f"/audit/evidence/{breach.reference}/{export.pk}/download/")
    assert download["Content-Type"] == "application/zip"
    assert download["X-Evidence-Manifest-SHA256"] == export.manifest_sha256
    assert verify_bundle(download.content, expected_manifest_sha256=export.manifest_sha256).ok


@pytest.mark.parametrize("who", ["outsider", "responder_on_incident", "manager"])
def test_evidence_is_404_for_everyone_else(client, breach, security, who):
    export = export_evidence(incident=breach, by=security)
    user = {
        "outsider": lambda: ResponderFactory(),
        "responder_on_incident": lambda: ResponderFactory(),
        "manager": lambda: UserFactory(groups=["incident_manager"], is_staff=True),
    }[who]()
    if who == "responder_on_incident":
        add_responder(incident=breach, user=user, by=security)
    client.force_login(user)
    assert client.get(f"/audit/evidence/{breach.reference}/").status_code == 404
    assert client.post(f"/audit/evidence/{breach.reference}/").status_code == 404
    assert client.get(f"/audit/evidence/{breach.reference}/{export.pk}/download/").status_code == 404
    assert EvidenceExport.objects.filter(incident_id=breach.pk).count() == 1


def test_verify_page_reports_intact_and_tampered_uploads(client, breach, security):
    from django.core.files.uploadedfile import SimpleUploadedFile

    export = export_evidence(incident=breach, by=security)
    client.force_login(security)
    intact = client.post(
        "/audit/evidence/verify/", {"bundle": SimpleUploadedFile("b.zip", bytes(export.content), "application/zip")}
    )
    assert intact.status_code == 200 and intact.context["result"].ok
    assert intact.context["export"].pk == export.pk and breach.reference in intact.content.decode()
    files = bundle_files(bytes(export.content))
    files["roles.json"] = b"[]\n"
    tampered = client.post("/audit/evidence/verify/", {"bundle": SimpleUploadedFile("b.zip", rezip(files))})
    assert not tampered.context["result"].ok and b"roles.json was altered" in tampered.content
    assert client.post("/audit/evidence/verify/", {}).status_code == 400
    client.force_login(ResponderFactory())
    assert client.get("/audit/evidence/verify/").status_code == 403
