"""Seed the guide's "Contact Information" (emergency contacts, escalation hotlines, vendors), the response-role
defaults of "Response Team Structure" and the "Escalation Path" as data that managers edit in admin."""

from datetime import timedelta

from django.db import migrations

EMERGENCY_CONTACTS = [
    ("Incident Commander", "+15550001", "Emergency contact for the Incident Commander."),
    ("Technical Lead", "+15550002", "Emergency contact for the Technical Lead."),
    ("DevOps On-Call", "+15550003", "Emergency contact for DevOps on-call."),
    ("Security Team", "+15550004", "Emergency contact for the security team."),
]
ESCALATION_HOTLINES = [
    ("Engineering Manager", "+15550010", "Escalation hotline: Engineering Manager."),
    ("CTO", "+15550011", "Escalation hotline: CTO/VP Eng."),
]
VENDORS = [
    {"name": "Railway", "support_email": "support@railway.app", "notes": "Hosting provider (backend)."},
    {"name": "Vercel", "support_url": "https://vercel.com/support", "notes": "Hosting provider (frontend)."},
    {"name": "CloudFlare", "support_url": "https://www.cloudflare.com/support", "notes": "CDN and DDoS protection."},
]
ROLE_DEFAULTS = [
    # role, primary, backup, primary_slot, primary hotline, backup hotline
    (
        "incident_commander",
        "On-call Engineering Manager",
        "Senior Engineer",
        "incident_commander",
        "Incident Commander",
        None,
    ),
    ("technical_lead", "On-call Senior Engineer", "Backend/Frontend Lead", "primary", "Technical Lead", None),
    ("communications_lead", "Product Manager", "Engineering Manager", "", None, "Engineering Manager"),
    ("scribe", "Available team member", "Rotates", "", None, None),
]
GUIDE_POLICY = "Guide escalation path"
# The guide's path: on-call engineer (0-15 min) -> team lead (15-30) -> engineering manager (30-60) -> CTO/VP Eng (60+).
LEVELS = [
    ("On-call engineer", 0, {"kind": "rotation_slot", "slot": "primary"}),
    ("Team lead", 15, {"kind": "team_lead"}),
    ("Engineering manager", 30, {"kind": "hotline", "hotline": "Engineering Manager"}),
    ("CTO/VP Eng", 60, {"kind": "hotline", "hotline": "CTO"}),
]


def seed(apps, schema_editor):
    Hotline = apps.get_model("oncall", "Hotline")
    Vendor = apps.get_model("oncall", "Vendor")
    ResponseRoleDefault = apps.get_model("oncall", "ResponseRoleDefault")
    EscalationPolicy = apps.get_model("oncall", "EscalationPolicy")
    EscalationLevel = apps.get_model("oncall", "EscalationLevel")
    EscalationTarget = apps.get_model("oncall", "EscalationTarget")

    hotlines = {}
    for kind, rows in (("emergency_contact", EMERGENCY_CONTACTS), ("escalation_hotline", ESCALATION_HOTLINES)):
        for position, (name, phone, description) in enumerate(rows):
            hotlines[name], _ = Hotline.objects.update_or_create(
                name=name, defaults={"kind": kind, "phone": phone, "description": description, "position": position}
            )
    for row in VENDORS:
        Vendor.objects.update_or_create(name=row["name"], defaults=row)
    for position, (role, primary, backup, slot, primary_hotline, backup_hotline) in enumerate(ROLE_DEFAULTS):
        ResponseRoleDefault.objects.update_or_create(
            role=role,
            defaults={
                "primary": primary,
                "backup": backup,
                "primary_slot": slot,
                "position": position,
                "primary_hotline": hotlines.get(primary_hotline),
                "backup_hotline": hotlines.get(backup_hotline),
            },
        )
    policy, _ = EscalationPolicy.objects.update_or_create(
        name=GUIDE_POLICY,
        defaults={
            "is_default": True,
            "description": "The guide's Escalation Path: on-call engineer, then team lead at 15 min, engineering "
            "manager at 30 min, CTO/VP Eng at 60 min.",
        },
    )
    for position, (name, minutes, target) in enumerate(LEVELS):
        level, _ = EscalationLevel.objects.update_or_create(
            policy=policy, position=position, defaults={"name": name, "delay": timedelta(minutes=minutes)}
        )
        level.targets.all().delete()
        fields = dict(target)
        if "hotline" in fields:
            fields["hotline"] = hotlines[fields["hotline"]]
        EscalationTarget.objects.create(level=level, **fields)


class Migration(migrations.Migration):
    dependencies = [("oncall", "0002_directory_rotations_escalation")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
