"""The schema and its two documentation pages, served from local static files (no CDN)."""

import re

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_schema_documents_every_api_path_and_the_error_shape(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    for path in [
        "/api/v1/incidents/",
        "/api/v1/incidents/{reference}/timeline/",
        "/api/v1/integrations/pagerduty/v2/enqueue",
        "/api/v1/integrations/alertmanager/",
        "/api/v1/oncall/now/",
        "/api/v1/tokens/",
    ]:
        assert path in paths, path
    declare = paths["/api/v1/incidents/"]["post"]["responses"]
    assert {"201", "400", "401", "403", "409", "429"} <= set(declare)
    assert declare["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    assert "apiToken" in schema["components"]["securitySchemes"]


@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_local_static_files_only(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "drf_spectacular_sidecar" in html
    external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', html) if u.startswith(("http:", "https:", "//"))]
    assert external == []


def test_swagger_init_script_is_served_separately_for_the_csp(client):
    response = client.get("/api/docs/", {"script": ""})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")


def test_openapi_document_is_valid(client):
    """Client generators refuse an invalid document (a path parameter on a path without it, say)."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    validate(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path, (method, path, parameter["name"])
