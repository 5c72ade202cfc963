"""Triage probes against real servers on loopback: results on the timeline, one entry per service."""

import pytest
import trustme

from incidentportal.celery import app as celery_app
from incidents.models import EventType, TimelineEntry
from incidents.watch import services
from incidents.watch.models import Probe, ProbeKind
from incidents.watch.probes import run_probe
from tests.factories import ServiceFactory, declare

from .servers import HealthHandler, PrometheusHandler, closed_port, http_server

pytestmark = pytest.mark.django_db

ERROR_RATE = 'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'


@pytest.fixture
def health():
    with http_server(HealthHandler) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def prometheus(settings):
    with http_server(PrometheusHandler) as port:
        settings.PROMETHEUS_URL = f"http://127.0.0.1:{port}"
        yield settings.PROMETHEUS_URL


def probe(kind=ProbeKind.HTTP, **fields) -> Probe:
    service = fields.pop("service", None) or ServiceFactory()
    return Probe.objects.create(service=service, name=fields.pop("name", "probe"), kind=kind, **fields)


def test_http_probe_passes_on_the_expected_status_and_fails_otherwise(health):
    ok = run_probe(probe(url=f"{health}/healthz"))
    assert ok.ok and "HTTP 200" in ok.summary and ok.latency_ms is not None
    broken = run_probe(probe(url=f"{health}/broken"))
    assert not broken.ok and "HTTP 500, expected 200" in broken.summary
    expected_404 = run_probe(probe(url=f"{health}/missing", expected_status=404))
    assert expected_404.ok


def test_a_hanging_endpoint_is_a_timed_out_result_not_a_hung_probe(health):
    result = run_probe(probe(url=f"{health}/hang", timeout_seconds=0.3))
    assert not result.ok and "timed out" in result.summary


def test_redirects_are_followed_on_the_same_host_only(health):
    assert run_probe(probe(url=f"{health}/moved")).ok
    elsewhere = run_probe(probe(url=f"{health}/elsewhere"))
    assert not elsewhere.ok and "redirected to another host (203.0.113.9); not followed" in elsewhere.summary
    looping = run_probe(probe(url=f"{health}/loop"))
    assert not looping.ok and "more than 3 redirects" in looping.summary


def test_a_huge_body_is_read_only_up_to_the_cap(health):
    assert run_probe(probe(url=f"{health}/huge")).ok


def test_unreachable_and_wrong_ports_are_clear_results():
    refused = run_probe(probe(url=f"http://127.0.0.1:{closed_port()}/healthz"))
    assert not refused.ok and "connection refused" in refused.summary
    tcp = run_probe(probe(ProbeKind.TCP, host="127.0.0.1", port=closed_port()))
    assert not tcp.ok and "connection refused" in tcp.summary


def test_tcp_probe_connects(health):
    port = int(health.rsplit(":", 1)[1])
    result = run_probe(probe(ProbeKind.TCP, host="127.0.0.1", port=port))
    assert result.ok and result.summary.startswith(f"127.0.0.1:{port}: connected in")


def test_https_probe_reports_an_untrusted_certificate(settings, tmp_path):
    import ssl

    from .servers import http_server as serve

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with serve(HealthHandler, context=context) as port:
        untrusted = run_probe(probe(url=f"https://127.0.0.1:{port}/healthz"))
        assert not untrusted.ok and "TLS certificate invalid" in untrusted.summary
        bundle = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        settings.WATCH_CA_BUNDLE = str(bundle)
        trusted = run_probe(probe(url=f"https://127.0.0.1:{port}/healthz"))
        assert trusted.ok and "(TLS valid)" in trusted.summary


def test_prometheus_probe_compares_the_value_with_its_threshold(prometheus):
    calm = run_probe(probe(ProbeKind.PROMETHEUS, query=ERROR_RATE, comparison=">", threshold=0.5))
    assert calm.ok and calm.value == 0.12 and "within threshold" in calm.summary
    burning = run_probe(probe(ProbeKind.PROMETHEUS, query=ERROR_RATE, comparison=">", threshold=0.05))
    assert not burning.ok and "= 0.12, above the threshold 0.05" in burning.summary
    connections = run_probe(probe(ProbeKind.PROMETHEUS, query="pg_stat_activity_count", comparison=">=", threshold=80))
    assert not connections.ok and connections.value == 87
    assert run_probe(probe(ProbeKind.PROMETHEUS, query="scalar(1)", threshold=None)).ok


def test_prometheus_errors_are_named(prometheus, settings):
    malformed = run_probe(probe(ProbeKind.PROMETHEUS, query="rate(", threshold=1))
    assert not malformed.ok and 'refused: invalid parameter "query": 1:1: parse error' in malformed.summary
    empty = run_probe(probe(ProbeKind.PROMETHEUS, query="absent_metric", threshold=1))
    assert not empty.ok and "returned no data" in empty.summary
    settings.PROMETHEUS_URL = ""
    unset = run_probe(probe(ProbeKind.PROMETHEUS, query="up", threshold=1))
    assert not unset.ok and "PROMETHEUS_URL is not set" in unset.summary


def test_triage_writes_one_entry_per_service_with_every_result(health, prometheus, responder):
    api = ServiceFactory(name="Backend API", slug="api")
    db = ServiceFactory(name="Database", slug="db")
    quiet = ServiceFactory(name="Docs", slug="docs")
    probe(service=api, name="Health endpoint", url=f"{health}/healthz")
    probe(ProbeKind.PROMETHEUS, service=api, name="Error rate", query=ERROR_RATE, threshold=0.05)
    probe(ProbeKind.TCP, service=db, name="PostgreSQL port", host="127.0.0.1", port=closed_port())
    probe(service=db, name="Paused", url=f"{health}/broken", is_active=False)
    incident = declare(by=responder, services=[api, db, quiet])

    assert services.run_triage(incident=incident, by=responder) == 2
    entries = {
        entry.data["service_id"]: entry
        for entry in TimelineEntry.objects.filter(incident=incident, event_type=EventType.TRIAGE_RESULTS)
    }
    assert set(entries) == {api.pk, db.pk}
    api_entry = entries[api.pk]
    assert "Triage of **Backend API**: 1 of 2 failing." in api_entry.body
    assert [row["name"] for row in api_entry.data["results"]] == ["Health endpoint", "Error rate"]
    assert [row["ok"] for row in api_entry.data["results"]] == [True, False]
    assert "connection refused" in entries[db.pk].body and "Paused" not in entries[db.pk].body
    assert api_entry.author == responder


def test_declaring_runs_triage_after_commit(health, responder, django_capture_on_commit_callbacks):
    service = ServiceFactory(name="Checkout", slug="checkout")
    probe(service=service, name="Health endpoint", url=f"{health}/healthz")
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            incident = declare(by=responder, services=[service])
    finally:
        celery_app.conf.task_always_eager = False
    entry = TimelineEntry.objects.get(incident=incident, event_type=EventType.TRIAGE_RESULTS)
    assert "all 1 passing" in entry.body and entry.author is None


def test_run_triage_from_the_incident_page(client, health, responder, viewer, django_capture_on_commit_callbacks):
    service = ServiceFactory(name="Checkout", slug="checkout")
    probe(service=service, name="Health endpoint", url=f"{health}/broken")
    incident = declare(by=responder, services=[service])
    client.force_login(responder)
    page = client.get(f"/incidents/{incident.reference}/").content.decode()
    assert "Run triage again" in page and "1 probe of the affected services" in page
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/incidents/{incident.reference}/triage/")
    finally:
        celery_app.conf.task_always_eager = False
    assert response.status_code == 302
    entry = TimelineEntry.objects.get(incident=incident, event_type=EventType.TRIAGE_RESULTS)
    assert "1 of 1 failing" in entry.body and entry.author == responder  # who asked
    client.force_login(viewer)
    assert client.post(f"/incidents/{incident.reference}/triage/").status_code == 403
    assert client.post("/incidents/INC-99999/triage/").status_code == 404
    assert client.get(f"/incidents/{incident.reference}/triage/").status_code == 405


def test_the_admin_refuses_a_probe_without_its_target(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    service = ServiceFactory()
    response = client.post(
        "/admin/watch/probe/add/",
        {"service": service.pk, "name": "TCP", "kind": "tcp", "position": 0, "expected_status": 200,
         "comparison": ">", "timeout_seconds": 3},
    )  # fmt: skip
    page = response.content.decode()
    assert response.status_code == 200
    assert "A TCP probe needs the host to connect to." in page and "A TCP probe needs the port" in page
    assert not Probe.objects.exists()


def test_probe_timeouts_are_bounded(responder):
    from django.core.exceptions import ValidationError

    slow = Probe(
        service=ServiceFactory(), name="slow", kind=ProbeKind.HTTP, url="http://127.0.0.1/", timeout_seconds=60
    )
    with pytest.raises(ValidationError) as error:
        slow.full_clean()
    assert "timeout_seconds" in error.value.message_dict


def test_a_slow_endpoint_passes_with_its_latency(health):
    from .servers import SLOW_SECONDS

    result = run_probe(probe(url=f"{health}/slow"))
    assert result.ok and "HTTP 200" in result.summary
    assert result.latency_ms >= SLOW_SECONDS * 1000  # the wait is measured, not hidden


def test_bad_targets_are_clear_results_on_the_timeline_in_one_bounded_run(health, responder):
    """Unknown hosts, a wrong port, an untrusted certificate and a hanging endpoint: one timeline entry naming each
    failure, written after every probe gave up within its own timeout."""
    import ssl

    from .servers import http_server as serve

    ca = trustme.CA()  # not trusted by the portal: a self-signed chain
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    service = ServiceFactory(name="Checkout", slug="checkout")
    with serve(HealthHandler, context=context) as tls_port:
        probe(service=service, name="Unknown host", url="http://no-such-host.invalid/healthz")
        probe(ProbeKind.TCP, service=service, name="Wrong port", host="127.0.0.1", port=closed_port())
        probe(ProbeKind.TCP, service=service, name="Unknown database host", host="db.invalid", port=5432)
        probe(service=service, name="Untrusted", url=f"https://127.0.0.1:{tls_port}/healthz")
        probe(service=service, name="Hangs", url=f"{health}/hang", timeout_seconds=0.3)
        incident = declare(by=responder, services=[service])
        assert services.run_triage(incident=incident, by=responder) == 1
    entry = TimelineEntry.objects.get(incident=incident, event_type=EventType.TRIAGE_RESULTS)
    assert "Triage of **Checkout**: 5 of 5 failing." in entry.body
    assert "**Unknown host**: http://no-such-host.invalid/healthz: host not found" in entry.body
    assert "**Wrong port**: 127.0.0.1:" in entry.body and "connection refused" in entry.body
    assert "**Unknown database host**: db.invalid:5432: host not found" in entry.body
    assert f"**Untrusted**: https://127.0.0.1:{tls_port}/healthz: TLS certificate invalid" in entry.body
    assert f"**Hangs**: {health}/hang: timed out" in entry.body
