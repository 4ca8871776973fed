"""The API's cross-cutting behaviour: error shape, schema and docs, throttling, health."""

import re

import pytest

from tests.factories import client_for

pytestmark = pytest.mark.django_db


def test_unauthenticated_gets_401_in_the_error_shape(client):
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "not_authenticated", "message": response.json()["error"]["message"], "fields": {}}
    }


def test_unknown_api_path_is_json_404(client):
    response = client.get("/api/v1/nope/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_malformed_json_is_400(fed):
    response = client_for(fed.users["fedadmin"]).post("/api/v1/institutions/", "{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_openapi_schema_and_local_swagger_ui(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert "/api/v1/institutions/{institution_id}/tokens/" in body["paths"]
    assert body["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"

    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    # No asset from another host (the page embeds a random CSRF token, so look for URLs, not letters).
    sources = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    assert sources and all(s.startswith("/") or s.startswith("#") for s in sources), sources
    assert not re.search(r"//[\w.-]*cdn|unpkg\.com|jsdelivr", html, re.I)
    assert "https://" not in html.split("<body")[1].split("</body>")[0].replace("https://swagger.io", "")
    # The Swagger UI assets are served locally.
    asset = [part.split('"')[0] for part in html.split('src="')[1:] if "swagger-ui-bundle" in part][0]
    assert asset.startswith("/static/") and client.get(asset).status_code == 200


def test_per_token_throttle_answers_429_with_retry_after(fed, monkeypatch):
    from accounts.throttling import PerTokenRateThrottle

    monkeypatch.setattr(PerTokenRateThrottle, "rate", "3/min", raising=False)
    a = fed.client("token_a_read")
    statuses = [a.get("/api/v1/me/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = a.get("/api/v1/me/")
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled["Retry-After"]) >= 1
    # Throttling is per token: another token is unaffected.
    assert fed.client("token_a_admin").get("/api/v1/me/").status_code == 200


def test_healthz_reports_every_component(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert set(checks) == {"database", "channel_layer", "broker"}
    assert all(c["ok"] for c in checks.values())


def test_healthz_reports_unreachable_broker_as_503(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    from portal.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
