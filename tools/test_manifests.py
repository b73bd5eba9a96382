"""What DESIGN.md and the container issue ask of the manifests, checked on kustomize's output."""

import ipaddress

import yaml

from tools import lint


def rendered(kustomization="k8s/overlays/demo"):
    result = lint.run(str(lint.BIN / "kubectl"), "kustomize", str(lint.ROOT / kustomization))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_app_pods_are_probed_limited_and_locked_down():
    objs = rendered()
    for name in ("web", "worker", "beat", "flower"):
        pod = objs[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert {"livenessProbe", "startupProbe"} <= set(c), name
            assert set(c["resources"]) == {"requests", "limits"}, name
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_web_readiness_checks_dependencies_and_liveness_does_not():
    web = rendered()[("Deployment", "web")]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_worker_liveness_does_not_ask_the_broker():
    worker = rendered()[("Deployment", "worker")]["spec"]["template"]["spec"]
    command = " ".join(worker["containers"][0]["livenessProbe"]["exec"]["command"])
    assert "heartbeat" in command and "celery" not in command
    # The warm shutdown waits for running tasks, each bounded by the task time limit: that must
    # end, with room to hand prefetched tasks back, before the pod is killed.
    config = rendered()[("ConfigMap", "qbuy-config")]["data"]
    assert worker["terminationGracePeriodSeconds"] >= int(config["CELERY_TASK_TIME_LIMIT"]) + 10


def test_exactly_one_beat():
    beat = rendered()[("Deployment", "beat")]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"
    assert ("HorizontalPodAutoscaler", "beat") not in rendered()


def test_scaling_disruption_and_network_rules():
    objs = rendered()
    for name in ("web", "worker"):
        assert ("HorizontalPodAutoscaler", name) in objs
        assert ("PodDisruptionBudget", name) in objs
    deny = objs[("NetworkPolicy", "default-deny-ingress")]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    assert ("StatefulSet", "redis") in objs and ("StatefulSet", "postgres") in objs
    assert ("Job", "migrate") in objs
    base = rendered("k8s/base")
    assert ("StatefulSet", "redis") not in base  # production brings managed services


def test_sms_codes_have_their_own_per_minute_limit_at_the_ingress():
    objs = rendered("k8s/base")
    site = objs[("Ingress", "qbuy")]
    code = objs[("Ingress", "qbuy-auth-code")]
    prefix = "nginx.ingress.kubernetes.io/"
    assert code["metadata"]["annotations"][prefix + "limit-rpm"] == "6"
    burst = int(code["metadata"]["annotations"][prefix + "limit-rpm"]) * int(
        code["metadata"]["annotations"][prefix + "limit-burst-multiplier"]
    )
    assert burst <= 6  # ingress-nginx's smallest at 6/min (deploy/nginx.conf: 3)
    # One Ingress, one zone (ingress-nginx names it after the object): the login page's form
    # spends the same budget as the API's sends.
    assert paths_of(code, site) == [("/api/auth/code", "Exact"), ("/login/", "Exact")]


def paths_of(ingress, site) -> list[tuple[str, str]]:
    """The paths of ``ingress``, checked to be on the site's host, TLS and backend."""
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == site["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"] == site["spec"]["tls"]
    backend = site["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert all(p["backend"] == backend for p in rule["http"]["paths"])
    return [(p["path"], p["pathType"]) for p in rule["http"]["paths"]]


def test_code_checks_have_a_per_minute_limit_at_the_ingress():
    objs = rendered("k8s/base")
    login = objs[("Ingress", "qbuy-auth-login")]
    annotations = login["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "limit-rpm"] == "10"  # deploy/nginx.conf's NGINX_LOGIN_RATE
    assert annotations[prefix + "limit-burst-multiplier"] == "1"
    assert paths_of(login, objs[("Ingress", "qbuy")]) == [("/api/auth/login", "Exact")]
    # Every path that sends or checks a code is limited by one Ingress or the other, once.
    limited = [
        path
        for (kind, _), obj in objs.items()
        if kind == "Ingress" and prefix + "limit-rpm" in obj["metadata"]["annotations"]
        for path, _ in paths_of(obj, objs[("Ingress", "qbuy")])
    ]
    assert sorted(limited) == ["/api/auth/code", "/api/auth/login", "/login/"]


def test_the_admin_is_allowlisted_at_the_ingress():
    objs = rendered()  # the demo too: no overlay may drop it
    admin = objs[("Ingress", "qbuy-admin")]
    allowed = admin["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
    cidrs = [ipaddress.ip_network(c.strip()) for c in allowed.split(",")]
    assert cidrs and all(c.is_private for c in cidrs)
    assert paths_of(admin, objs[("Ingress", "qbuy")]) == [("/admin/", "Prefix")]


def test_django_keys_client_limits_on_the_address_the_ingress_resolved():
    objs = rendered()  # the demo: the base and the demo's own policies
    # ingress-nginx sets X-Real-IP to the client it resolved; REMOTE_ADDR is the controller.
    assert objs[("ConfigMap", "qbuy-config")]["data"]["CLIENT_IP_META"] == "HTTP_X_REAL_IP"
    # That header is only trustworthy if nothing but the controller can reach web.
    policy = objs[("NetworkPolicy", "web-from-ingress")]["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "web"}
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector"}
    allowed = [p for p in objs.values() if p["kind"] == "NetworkPolicy"]
    web_labels = objs[("Deployment", "web")]["spec"]["template"]["metadata"]["labels"]
    for other in allowed:
        selector = other["spec"]["podSelector"].get("matchLabels", {})
        if other["metadata"]["name"] != "web-from-ingress" and other["spec"].get("ingress"):
            assert not selector.items() <= web_labels.items(), other["metadata"]["name"]
