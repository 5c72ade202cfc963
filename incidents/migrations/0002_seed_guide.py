"""Seed the Incident Response Guide as data: severity levels, the phase checklists, the five runbooks,
the permission groups and the incident reference counter. All of it is editable in the admin afterwards."""

from datetime import timedelta

from django.db import migrations

SEVERITIES = [
    {
        "level": "P0",
        "rank": 0,
        "name": "Critical",
        "description": "Complete service outage",
        "impact": "All users affected",
        "response_target": timedelta(minutes=15),
        "response_next_business_day": False,
        "escalation_delay": timedelta(0),
        "update_cadence": timedelta(minutes=15),
        "pages_out_of_hours": True,
        "examples": [
            "Database server down",
            "Application completely unavailable",
            "Data breach detected",
            "Payment system failure",
            "Authentication system down",
        ],
    },
    {
        "level": "P1",
        "rank": 1,
        "name": "High",
        "description": "Major feature unavailable",
        "impact": "Large user subset",
        "response_target": timedelta(hours=1),
        "response_next_business_day": False,
        "escalation_delay": timedelta(minutes=30),
        "update_cadence": timedelta(minutes=30),
        "pages_out_of_hours": True,
        "examples": [
            "Critical API endpoints failing",
            "Database performance severely degraded",
            "Memory leak causing crashes",
            "Security vulnerability actively exploited",
        ],
    },
    {
        "level": "P2",
        "rank": 2,
        "name": "Medium",
        "description": "Minor feature broken",
        "impact": "Small user subset",
        "response_target": timedelta(hours=4),
        "response_next_business_day": False,
        "escalation_delay": timedelta(hours=2),
        "update_cadence": timedelta(hours=1),
        "pages_out_of_hours": True,
        "examples": [
            "Single feature not working",
            "Performance degradation (non-critical)",
            "Intermittent errors affecting some users",
            "Minor security vulnerability",
        ],
    },
    {
        "level": "P3",
        "rank": 3,
        "name": "Low",
        "description": "Cosmetic or minor issue",
        "impact": "Minimal impact",
        "response_target": None,
        "response_next_business_day": True,
        "escalation_delay": None,
        "update_cadence": None,
        "pages_out_of_hours": False,
        "examples": [
            "UI glitches",
            "Documentation errors",
            "Minor performance issues",
            "Feature enhancement requests",
        ],
    },
]

CHECKLISTS = {
    "triage": [
        "Determine severity level",
        "Identify affected systems",
        "Estimate user impact",
        "Check recent changes/deployments",
        "Review monitoring dashboards",
        "Gather initial evidence",
    ],
    "detection": [
        "Alert acknowledged",
        "Severity assessed",
        "IC assigned",
        "Incident channel created",
        "Initial assessment completed",
    ],
    "response": [
        "Team assembled",
        "Investigation started",
        "Status page updated",
        "Internal communication sent",
        "Mitigation implemented",
    ],
    "resolution": [
        "Fix deployed",
        "Verification completed",
        "Monitoring confirmed stable",
        "Status page updated",
        "Users notified",
    ],
    "recovery": [
        "Verify all systems operational",
        "Confirm fix resolves issue",
        "Monitor for regression",
        "Update status page",
        "Notify stakeholders",
        "Schedule post-mortem",
        "Services fully restored",
        "Documentation completed",
        "Action items created",
        "Runbook updated",
    ],
    "closure": [
        "Incident resolved",
        "Monitoring confirms stability (24 hours)",
        "Status page updated to \"Resolved\"",
        "Internal communication sent",
        "Incident timeline documented",
        "Post-mortem scheduled",
    ],
}

RUNBOOKS = [
    {
        "title": "Database Connection Exhaustion",
        "slug": "database-connection-exhaustion",
        "summary": "The database refuses new connections because the pool or max_connections is used up.",
        "severity": "P1",
        "symptoms": ['"Too many connections" errors', "Slow API responses", "Timeouts"],
        "notes": "",
        "steps": [
            (
                "Check connection count",
                'psql -c "SELECT count(*) FROM pg_stat_activity;"\npsql -c "SHOW max_connections;"',
            ),
            (
                "Identify connection sources",
                'psql -c "SELECT application_name, count(*) FROM pg_stat_activity GROUP BY application_name;"',
            ),
            (
                "Kill idle connections",
                "psql -c \"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle' "
                "AND state_change < now() - interval '1 hour';\"",
            ),
            ("Increase pool size (temporary): update backend configuration and restart the application", ""),
            ("Permanent fix: optimize connection pooling and add connection limits per service", ""),
        ],
    },
    {
        "title": "Memory Leak",
        "slug": "memory-leak",
        "summary": "Application memory grows until workers crash or are killed by the OOM killer.",
        "severity": "P1",
        "symptoms": ["Increasing memory usage", "Application crashes", "OOM errors"],
        "notes": "",
        "steps": [
            ("Check memory usage", "ps aux | grep -E \"gunicorn|uvicorn\" | awk '{print $4, $6, $11}'"),
            ("Restart affected workers", "kill -HUP $(cat /var/run/backend.pid)"),
            (
                "Monitor memory growth",
                "watch -n 5 'ps aux | grep gunicorn | awk \"{sum+=\\$6} END {print sum/1024 \\\"MB\\\"}\"'",
            ),
            (
                "Investigate leak with a memory profiler",
                "pip install memory-profiler\npython -m memory_profiler backend/main.py",
            ),
            ("Permanent fix: fix the leak in code and deploy the patch", ""),
        ],
    },
    {
        "title": "DDoS Attack",
        "slug": "ddos-attack",
        "summary": "A flood of traffic overwhelms the service so legitimate users cannot reach it.",
        "severity": "P0",
        "symptoms": ["Unusual traffic spike", "High server load", "Legitimate users cannot access"],
        "notes": "",
        "steps": [
            (
                "Verify attack",
                "tail -1000 /var/log/nginx/access.log | awk '{print $1}' | sort | uniq -c | sort -rn | head -20",
            ),
            (
                "Enable rate limiting (nginx)",
                "limit_req_zone $binary_remote_addr zone=api:10m rate=10r/s;\nlimit_req zone=api burst=20;",
            ),
            ("Block attacking IPs at the firewall", "for ip in $(cat attacking_ips.txt); do\n    ufw deny from $ip\ndone"),
            ('Enable CloudFlare protection ("Under Attack" mode)', ""),
            ("Contact hosting provider and request DDoS mitigation", ""),
        ],
    },
    {
        "title": "Data Breach",
        "slug": "data-breach",
        "summary": "CRITICAL - follow the security incident protocol. Mark the incident restricted.",
        "severity": "P0",
        "symptoms": ["Unauthorized access in logs", "Unexpected data exports", "Credentials reported leaked"],
        "notes": "**DO NOT**: delete logs; make changes without documentation; delay notification.",
        "steps": [
            ("ISOLATE affected systems (disconnect from network if necessary)", "sudo systemctl stop subjunctive-backend"),
            (
                "PRESERVE evidence: take snapshots, save logs",
                "tar -czf evidence-$(date +%Y%m%d).tar.gz /var/log/subjunctive/",
            ),
            (
                "ASSESS scope: check logs for unauthorized access",
                'grep "401\\|403" /var/log/nginx/access.log > unauthorized_access.log',
            ),
            (
                "CONTAIN breach: revoke all sessions, rotate all secrets (JWT_SECRET_KEY, database passwords)",
                "redis-cli FLUSHDB",
            ),
            ("NOTIFY: legal team, security team, affected users (if required by law)", ""),
        ],
    },
    {
        "title": "SSL Certificate Expired",
        "slug": "ssl-certificate-expired",
        "summary": "The TLS certificate has expired, so browsers and API clients refuse to connect.",
        "severity": "P1",
        "symptoms": ["SSL/TLS errors", '"Certificate expired" warnings', "API calls failing"],
        "notes": "",
        "steps": [
            (
                "Verify expiration",
                "echo | openssl s_client -servername api.example.com -connect api.example.com:443 2>/dev/null | "
                "openssl x509 -noout -dates",
            ),
            ("Renew certificate", "sudo certbot renew --force-renewal"),
            ("Reload web server", "sudo systemctl reload nginx"),
            ("Verify fix", "curl -I https://api.example.com"),
            (
                "Set up auto-renewal",
                "sudo crontab -e\n# Add: 0 0 * * 0 certbot renew --quiet && systemctl reload nginx",
            ),
        ],
    },
]

GROUPS = ["viewer", "responder", "incident_manager", "admin", "security"]


def seed(apps, schema_editor):
    SeverityPolicy = apps.get_model("incidents", "SeverityPolicy")
    ChecklistTemplateItem = apps.get_model("incidents", "ChecklistTemplateItem")
    Runbook = apps.get_model("incidents", "Runbook")
    RunbookStep = apps.get_model("incidents", "RunbookStep")
    ReferenceCounter = apps.get_model("incidents", "ReferenceCounter")
    Group = apps.get_model("auth", "Group")

    severities = {}
    for row in SEVERITIES:
        severities[row["level"]], _ = SeverityPolicy.objects.update_or_create(level=row["level"], defaults=row)
    for phase, items in CHECKLISTS.items():
        for position, text in enumerate(items, start=1):
            ChecklistTemplateItem.objects.update_or_create(phase=phase, position=position, defaults={"text": text})
    for row in RUNBOOKS:
        runbook, _ = Runbook.objects.update_or_create(
            slug=row["slug"],
            defaults={
                "title": row["title"],
                "summary": row["summary"],
                "symptoms": row["symptoms"],
                "notes": row["notes"],
                "suggested_severity": severities[row["severity"]],
            },
        )
        for position, (text, command) in enumerate(row["steps"], start=1):
            RunbookStep.objects.update_or_create(
                runbook=runbook, position=position, defaults={"text": text, "command": command}
            )
    ReferenceCounter.objects.get_or_create(name="incident", defaults={"value": 0})
    for name in GROUPS:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
