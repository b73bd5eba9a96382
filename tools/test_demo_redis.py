"""Two Redis wherever qbuy is deployed: the state one never evicts, the pages' one does.

A maxmemory policy is per Redis instance (its logical databases share it), so the pages cannot
share the Redis of the broker, the stock counters, the sessions and the SMS codes: checked on
deploy/compose.yml, .env.example and the Kubernetes demo as kustomize renders it.
"""

import yaml

from tools import lint
from tools.test_manifests import rendered


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _env_example() -> dict:
    lines = (lint.ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_runs_a_state_redis_and_a_page_redis():
    services = yaml.safe_load((lint.ROOT / "deploy/compose.yml").read_text())["services"]
    state, pages = services["redis"]["command"], services["redis-cache"]["command"]
    assert _flag(state, "--maxmemory-policy") == "noeviction"
    assert _flag(state, "--appendonly") == "yes"
    assert _flag(pages, "--maxmemory-policy") == "allkeys-lru"
    assert _flag(pages, "--appendonly") == "no" and _flag(pages, "--save") == ""
    assert "volumes" not in services["redis-cache"]
    for command in (state, pages):
        assert _flag(command, "--maxmemory").endswith("mb")
    for app in ("web", "worker", "beat", "flower"):
        depends = services[app].get("depends_on", {})
        assert depends["redis-cache"]["condition"] == "service_healthy", app
    env = _env_example()
    assert env["CACHE_URL"].startswith("redis://redis-cache:")
    assert env["REDIS_URL"].startswith("redis://redis:")


def test_the_demo_overlay_runs_a_state_redis_and_a_page_redis():
    objs = rendered()
    config = objs[("ConfigMap", "qbuy-config")]["data"]
    assert config["CACHE_URL"] == "redis://redis-cache:6379/0"
    assert config["REDIS_URL"].startswith("redis://redis:")
    state = objs[("StatefulSet", "redis")]["spec"]["template"]["spec"]
    pages = objs[("Deployment", "redis-cache")]["spec"]["template"]["spec"]
    assert _flag(state["containers"][0]["args"], "--maxmemory-policy") == "noeviction"
    assert _flag(pages["containers"][0]["args"], "--maxmemory-policy") == "allkeys-lru"
    assert _flag(pages["containers"][0]["args"], "--appendonly") == "no"
    for pod in (state, pages):
        (c,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"readinessProbe", "livenessProbe"} <= set(c)
        assert set(c["resources"]) == {"requests", "limits"}
    # maxmemory under the container's limit: Redis refuses or evicts before the kernel kills it.
    limit = pages["containers"][0]["resources"]["limits"]["memory"]
    assert int(_flag(pages["containers"][0]["args"], "--maxmemory")[:-2]) < int(limit[:-2])
    service = objs[("Service", "redis-cache")]["spec"]
    assert service["selector"] == {"app.kubernetes.io/name": "redis-cache"}
    policy = objs[("NetworkPolicy", "redis-cache-from-app")]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis-cache"}
