import pytest
from port_for import get_port

from config.settings.caches import cache_config


def test_healthz_needs_no_dependency(client):
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert "no-cache" in r["Cache-Control"]


@pytest.mark.django_db
def test_readyz_checks_postgres_and_redis(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(client, settings):
    dead = f"redis://127.0.0.1:{get_port(None)}/0"  # a free port: nothing listens there
    settings.CACHES = {**settings.CACHES, "stock": cache_config(dead, connect_timeout=0.5)}
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"] != "ok"
