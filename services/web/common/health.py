"""Probes: /healthz says the process answers; /readyz says it can serve (Postgres and Redis)."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from redis.exceptions import RedisError

from orders import gate


@never_cache
def healthz(request):
    # No dependency checks: a Postgres outage must not make Kubernetes restart every web pod.
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    checks = {"postgres": _postgres(), "redis": _redis()}
    ready = all(v == "ok" for v in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


def _postgres() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _redis() -> str:
    try:
        gate.redis().ping()
    except RedisError as exc:
        return type(exc).__name__
    return "ok"
