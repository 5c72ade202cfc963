"""Alerting admin: integrations get a key shown once, error counts are visible, pages render."""

import pytest

from incidents.alerting.models import Integration, IntegrationError
from tests.factories import UserFactory

from .factories import make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.mark.parametrize(
    "model", ["integration", "alertgroup", "alertevent", "changeevent", "integrationerror", "apitoken"]
)
def test_changelists_render(admin_client, model):
    integration, _ = make_integration("alertmanager")
    IntegrationError.objects.create(
        integration=integration, kind="alertmanager", status_code=401, code="bad", message="m"
    )
    assert admin_client.get(f"/admin/alerting/{model}/").status_code == 200


def test_adding_an_integration_shows_its_key_once_and_stores_only_the_hash(admin_client):
    response = admin_client.post(
        "/admin/alerting/integration/add/",
        {
            "kind": "pagerduty",
            "name": "Datadog via PD",
            "default_action": "attach",
            "hmac_secret": "",
            "hmac_timestamp_header": "",
            "rules-TOTAL_FORMS": "0",
            "rules-INITIAL_FORMS": "0",
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    message = next(str(m) for m in response.context["messages"] if "shown once" in str(m))
    key = message.rsplit(" ", 1)[-1]
    integration = Integration.objects.get(name="Datadog via PD")
    assert len(key) == 32 and integration.key_prefix == key[:8] and key not in integration.key_hash


def test_integration_error_count_links_to_the_log(admin_client):
    integration, _ = make_integration("generic")
    for _ in range(3):
        IntegrationError.objects.create(integration=integration, kind="generic", status_code=400, code="x", message="m")
    page = admin_client.get("/admin/alerting/integration/").content.decode()
    assert f"?integration__id__exact={integration.pk}" in page and ">3</a>" in page
