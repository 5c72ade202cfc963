"""Certificate expiry watch against real TLS servers on loopback, with certificates made by trustme."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
import trustme
from django.utils import timezone

from incidents.alerting.models import AlertGroup, GroupStatus, Severity
from incidents.models import Incident
from incidents.profiles.services import set_time_zone
from incidents.profiles.zones import format_moment, format_utc
from incidents.watch import services
from incidents.watch.models import MonitoredCertificate
from incidents.watch.selectors import expiring_certificates
from tests.factories import ServiceFactory

from .servers import closed_port, tls_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca(settings, tmp_path):
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    settings.WATCH_CA_BUNDLE = str(bundle)
    return authority


def certificate(ca, days_left: float, now: datetime):
    return ca.issue_cert("localhost", not_before=now - timedelta(days=60), not_after=now + timedelta(days=days_left))


def watched(port: int, service=None) -> MonitoredCertificate:
    service = service or ServiceFactory(name="Web App", slug="web")
    return MonitoredCertificate.objects.create(service=service, hostname="localhost", port=port)


def open_groups():
    return list(AlertGroup.objects.filter(resolved_at__isnull=True).order_by("id"))


def test_a_certificate_with_40_days_left_alerts_nothing(ca):
    now = timezone.now()
    with tls_server(certificate(ca, 40, now)) as port:
        endpoint = watched(port)
        assert services.check_certificate(endpoint) is None
    endpoint.refresh_from_db()
    assert endpoint.chain_valid is True and endpoint.error == ""
    assert 39 <= (endpoint.not_after - now).days <= 40
    assert not AlertGroup.objects.exists()


def test_ten_days_left_opens_a_warning_that_attaches_and_does_not_declare(ca):
    now = timezone.now()
    with tls_server(certificate(ca, 10, now)) as port:
        endpoint = watched(port)
        assert services.check_certificate(endpoint) == 14
        assert services.check_certificate(endpoint) == 14  # the next day's check sends nothing new
    [group] = open_groups()
    assert group.severity == Severity.WARNING and "expires in 9 days" in group.summary
    assert group.service.slug == "web" and group.incident is None
    assert not Incident.objects.exists()


def test_seven_days_declares_a_p2_and_expiry_a_p1_with_the_runbook(ca):
    now = timezone.now()
    web = ServiceFactory(name="Web App", slug="web")
    with tls_server(certificate(ca, 5, now)) as port:
        endpoint = watched(port, web)
        assert services.check_certificate(endpoint) == 7
    p2 = Incident.objects.get()
    assert p2.severity.level == "P2" and list(p2.services.all()) == [web]

    with tls_server(certificate(ca, 0.5, now)) as port:
        MonitoredCertificate.objects.filter(pk=endpoint.pk).update(port=port)
        # Expired: checked two days later, when the same certificate is past its end.
        with time_machine.travel(now + timedelta(days=2)):
            endpoint.refresh_from_db()
            assert services.check_certificate(endpoint, now=timezone.now()) == 0
    [group] = open_groups()
    assert group.severity == Severity.CRITICAL and "has expired" in group.summary
    assert AlertGroup.objects.filter(status=GroupStatus.RESOLVED).count() == 1  # the 7-day alert moved on
    expired_incident = group.incident
    assert expired_incident is not None
    assert expired_incident.severity.level in {"P1", "P2"}  # attached to the open P2 or a new P1
    assert expired_incident.runbook_links.filter(runbook__slug="ssl-certificate-expired").exists()


def test_a_self_signed_certificate_is_invalid_and_alerts_as_critical(ca):
    stranger = trustme.CA()  # not in the bundle
    now = timezone.now()
    with tls_server(certificate(stranger, 200, now)) as port:
        endpoint = watched(port)
        assert services.check_certificate(endpoint) == 0
    endpoint.refresh_from_db()
    assert endpoint.chain_valid is False and "certificate invalid" in endpoint.error
    assert endpoint.not_after is not None  # read anyway, without verification
    [group] = open_groups()
    assert group.severity == Severity.CRITICAL and "is invalid" in group.summary


def test_a_renewed_certificate_resolves_the_alert(ca):
    now = timezone.now()
    with tls_server(certificate(ca, 10, now)) as port:
        endpoint = watched(port)
        services.check_certificate(endpoint)
    with tls_server(certificate(ca, 90, now)) as port:
        MonitoredCertificate.objects.filter(pk=endpoint.pk).update(port=port)
        endpoint.refresh_from_db()
        assert services.check_certificate(endpoint) is None
    assert open_groups() == []
    assert AlertGroup.objects.get().status == GroupStatus.RESOLVED
    endpoint.refresh_from_db()
    assert endpoint.alerted_stage is None


def test_an_unreachable_endpoint_is_recorded_without_an_alert(ca):
    endpoint = watched(closed_port())
    assert services.check_certificate(endpoint) is None
    endpoint.refresh_from_db()
    assert "no TLS handshake: connection refused" in endpoint.error and endpoint.chain_valid is None
    assert not AlertGroup.objects.exists()


def test_the_daily_check_picks_up_health_urls_and_checks_each_endpoint_once_a_day(ca):
    now = timezone.now()
    with tls_server(certificate(ca, 10, now)) as port:
        ServiceFactory(name="API", slug="api", health_check_url=f"https://localhost:{port}/healthz")
        ServiceFactory(name="Plain", slug="plain", health_check_url="http://localhost/healthz")
        assert services.check_due_certificates(now=now) == 1
        assert services.check_due_certificates(now=now + timedelta(hours=23)) == 0
        assert services.check_due_certificates(now=now + timedelta(hours=25)) == 1
    endpoint = MonitoredCertificate.objects.get()
    assert (endpoint.hostname, endpoint.port, endpoint.service.slug) == ("localhost", port, "api")


def test_the_dashboard_card_and_the_service_page_show_days_left(client, responder, ca):
    now = timezone.now()
    web = ServiceFactory(name="Web App", slug="web")
    MonitoredCertificate.objects.create(
        service=web, hostname="www.example.com", port=443, not_after=now + timedelta(days=6, hours=1), chain_valid=True
    )
    MonitoredCertificate.objects.create(
        service=web, hostname="old.example.com", port=8443, not_after=now - timedelta(days=1), chain_valid=False
    )
    MonitoredCertificate.objects.create(
        service=web, hostname="fine.example.com", port=443, not_after=now + timedelta(days=300), chain_valid=True
    )
    assert [row.hostname for row in expiring_certificates(now=now)] == ["old.example.com", "www.example.com"]
    client.force_login(responder)
    dashboard = client.get("/").content.decode()
    assert "Certificates expiring" in dashboard and "www.example.com" in dashboard and "6 days left" in dashboard
    assert "old.example.com:8443" in dashboard and "expired" in dashboard and "fine.example.com" not in dashboard
    page = client.get("/services/web/").content.decode()
    assert "fine.example.com:443" in page and "<td>299</td>" in page  # 300 days less the seconds since
    assert "<strong>expired</strong>" in page and "<strong>invalid</strong>" in page
    assert client.get("/services/nope/").status_code == 404
    # expiry dates in the reader's zone, the one format, UTC on hover
    set_time_zone(user=responder, time_zone="Asia/Tokyo")
    client.force_login(responder)  # the session takes the new zone at log-in
    page = client.get("/services/web/").content.decode()
    expiry = now + timedelta(days=300)
    assert f'title="{format_utc(expiry)}">{format_moment(expiry, ZoneInfo("Asia/Tokyo"))}</time>' in page
    assert " JST</time>" in page


def test_stage_boundaries():
    now = datetime(2030, 1, 1, tzinfo=UTC)

    def stage(days):
        return services.stage_for(not_after=now + timedelta(days=days), chain_valid=True, now=now)

    assert [stage(d) for d in (31, 30, 15, 14, 8, 7, 2, 1, 0.5, 0, -3)] == [None, 30, 30, 14, 14, 7, 7, 1, 1, 0, 0]
    assert services.stage_for(not_after=None, chain_valid=False, now=now) == 0


def test_the_timers_tick_only_wakes_the_check_when_an_endpoint_is_due(ca):
    from incidents.watch import tasks
    from incidents.watch.selectors import certificates_due

    now = timezone.now()
    assert not certificates_due(now=now)
    with tls_server(certificate(ca, 40, now)) as port:
        ServiceFactory(name="API", slug="api", health_check_url=f"https://localhost:{port}/healthz")
        assert certificates_due(now=now)  # a health URL not watched yet
        tasks.check_certificates()
        assert not certificates_due(now=timezone.now())
        assert certificates_due(now=timezone.now() + timedelta(days=1, minutes=1))
    assert tasks.certificate_tick() is False


def test_the_daily_check_walks_one_certificate_through_every_stage_and_renewal_resolves(ca):
    """Day by day (the portal's clock travels; the certificate stays): an alert group at 30, 14, 7 and 1 days left
    and when expired, each stage once; a renewed certificate resolves the last one."""
    now = timezone.now()
    with tls_server(certificate(ca, 31.5, now)) as port:
        web = ServiceFactory(name="Web App", slug="web", health_check_url=f"https://localhost:{port}/healthz")
        stages = []
        for day in range(34):
            with time_machine.travel(now + timedelta(days=day, minutes=5), tick=False):
                services.check_due_certificates(now=timezone.now())
                endpoint = MonitoredCertificate.objects.get(service=web)
                if endpoint.alerted_stage is not None and (not stages or stages[-1] != endpoint.alerted_stage):
                    stages.append(endpoint.alerted_stage)
    assert stages == [30, 14, 7, 1, 0]
    groups = list(AlertGroup.objects.order_by("id"))
    assert [g.severity for g in groups] == [Severity.WARNING, Severity.WARNING, Severity.ERROR, Severity.ERROR,
                                            Severity.CRITICAL]  # fmt: skip
    assert [g.status for g in groups[:-1]] == [GroupStatus.RESOLVED] * 4  # each stage moved on to the next
    assert "has expired" in groups[-1].summary and groups[-1].status == GroupStatus.TRIGGERED
    assert Incident.objects.filter(runbook_links__runbook__slug="ssl-certificate-expired").exists()
    later = now + timedelta(days=34, minutes=10)
    with tls_server(certificate(ca, 400, later)) as port, time_machine.travel(later, tick=False):
        MonitoredCertificate.objects.filter(service=web).update(port=port)
        services.check_certificate(MonitoredCertificate.objects.get(service=web), now=timezone.now())
    assert open_groups() == []


def test_an_endpoint_that_never_answers_the_handshake_times_out_without_an_alert(ca):
    """A port that accepts the connection and then says nothing (a hung TLS terminator): the check gives up after
    its timeout and records why; it never hangs the worker."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete in the kernel; nobody ever speaks TLS
        endpoint = watched(silent.getsockname()[1])
        assert services.check_certificate(endpoint, timeout=0.5) is None
    endpoint.refresh_from_db()
    assert endpoint.error == "no TLS handshake: timed out" and endpoint.chain_valid is None
    assert not AlertGroup.objects.exists()


def test_a_certificate_that_expired_yesterday_is_the_expired_stage(ca):
    now = timezone.now()
    with tls_server(certificate(ca, -1, now)) as port:
        endpoint = watched(port)
        assert services.check_certificate(endpoint) == 0
    [group] = open_groups()
    assert group.severity == Severity.CRITICAL and "has expired" in group.summary
    assert group.incident is not None and group.incident.severity.level == "P1"
    assert group.incident.runbook_links.filter(runbook__slug="ssl-certificate-expired").exists()
