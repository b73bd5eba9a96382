"""What DESIGN.md and the container issue ask of the manifests, checked on kustomize's output."""

import functools
import ipaddress
import shutil

import pytest
import yaml

from tools import lint, prometheusrule


@functools.cache  # kustomize takes a second or two; no test changes what it returns
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
    # Other policies may select web's pods (Prometheus, on the metrics port) but never open
    # the port the app answers on.
    web = objs[("Deployment", "web")]["spec"]["template"]
    web_labels = web["metadata"]["labels"]
    (http,) = [p for p in web["spec"]["containers"][0]["ports"] if p["name"] == "http"]
    for other in [p for p in objs.values() if p["kind"] == "NetworkPolicy"]:
        if other["metadata"]["name"] == "web-from-ingress" or not other["spec"].get("ingress"):
            continue
        if selects(other["spec"]["podSelector"], web_labels):
            for rule in other["spec"]["ingress"]:
                ports = {p["port"] for p in rule.get("ports", [])}
                assert ports and not ports & {"http", http["containerPort"]}, other["metadata"]


def selects(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/NotIn/Exists) selects
    ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        value = labels.get(e["key"])
        ok = {
            "In": value in e.get("values", []),
            "NotIn": value not in e.get("values", []),
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }[e["operator"]]
        if not ok:
            return False
    return True


# -- issue 21: metrics, KEDA, the Prometheus Operator -----------------------------------------
KUSTOMIZATIONS = ("k8s/base", "k8s/overlays/demo", "k8s/overlays/demo-operators")
APPS = ("web", "worker", "beat")


def containers(objs, name):
    return objs[("Deployment", name)]["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_is_in_qbuys_namespace(kustomization):
    for (kind, name), obj in rendered(kustomization).items():
        if kind != "Namespace":
            assert obj["metadata"].get("namespace") == "qbuy", (kind, name)


def test_the_base_and_the_demo_need_no_operator():
    """A cluster without KEDA or the Prometheus Operator applies them as they are."""
    for kustomization in KUSTOMIZATIONS[:2]:
        groups = {o["apiVersion"].rpartition("/")[0] for o in rendered(kustomization).values()}
        assert not groups & {"keda.sh", "monitoring.coreos.com"}, kustomization


def test_each_app_process_serves_metrics_on_its_own_port_to_prometheus_only():
    objs = rendered("k8s/overlays/demo-operators")
    for name in APPS:
        (container,) = containers(objs, name)
        assert {"name": "METRICS_PORT", "value": "9100"} in container["env"], name
        assert {"name": "metrics", "containerPort": 9100} in container["ports"], name
    for name in ("flower",):  # Flower's /metrics is on its own port, behind its login
        assert not any(
            e["name"] == "METRICS_PORT" for e in containers(objs, name)[0].get("env", [])
        )
    # No Service (so no Ingress) leads to the metrics port.
    for (kind, name), obj in objs.items():
        if kind == "Service":
            targets = {p.get("targetPort") for p in obj["spec"]["ports"]}
            assert not targets & {"metrics", 9100}, name
    # Who may reach it: Prometheus' pods in the monitoring namespace, nothing else.
    policy = objs[("NetworkPolicy", "metrics-from-monitoring")]["spec"]
    (expression,) = policy["podSelector"]["matchExpressions"]
    assert expression == {"key": "app.kubernetes.io/name", "operator": "In", "values": list(APPS)}
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    (source,) = rule["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    ingress_ns = objs[("NetworkPolicy", "web-from-ingress")]["spec"]["ingress"][0]["from"][0]
    for (kind, name), obj in objs.items():
        if kind == "NetworkPolicy" and name != "web-from-ingress":
            for allowed in obj["spec"].get("ingress", []):
                assert ingress_ns not in allowed.get("from", []), name


def route(objs, path: str) -> tuple[dict, dict]:
    """(Ingress, path entry) that ingress-nginx picks for ``path`` on the site's host: an Exact
    path first, else the longest Prefix path matching whole path elements."""
    host = objs[("Ingress", "qbuy")]["spec"]["rules"][0]["host"]
    candidates = []
    for (kind, _), obj in objs.items():
        if kind != "Ingress":
            continue
        for rule in obj["spec"]["rules"]:
            if rule["host"] != host:
                continue
            for entry in rule["http"]["paths"]:
                p, exact = entry["path"], entry["pathType"] == "Exact"
                prefix = p.rstrip("/")
                if (exact and path == p) or (
                    not exact and (path == prefix or path.startswith(prefix + "/"))
                ):
                    candidates.append(((exact, len(p)), obj, entry))
    assert candidates, path
    _, obj, entry = max(candidates, key=lambda c: c[0])
    return obj, entry


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/metrics/anything"])
def test_the_ingress_refuses_metrics(kustomization, path):
    objs = rendered(kustomization)
    ingress, _ = route(objs, path)
    allowed = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/whitelist-source-range"
    ]
    # Only the unspecified address, which no client has: the controller answers 403 to all.
    assert [ipaddress.ip_network(c.strip()) for c in allowed.split(",")] == [
        ipaddress.ip_network("0.0.0.0/32")
    ]
    # The rest of the site is routed as before, and no Ingress names a port but web's http.
    assert route(objs, "/metricsx")[0]["metadata"]["name"] == "qbuy"
    assert route(objs, "/sales/1/")[0]["metadata"]["name"] == "qbuy"
    for obj in objs.values():
        if obj["kind"] == "Ingress":
            for entry in obj["spec"]["rules"][0]["http"]["paths"]:
                assert entry["backend"]["service"] == {"name": "web", "port": {"name": "http"}}


def test_the_worker_has_one_autoscaler_keda_or_the_hpa():
    def scalers(objs):
        return [
            (kind, name)
            for (kind, name), obj in objs.items()
            if kind in ("HorizontalPodAutoscaler", "ScaledObject")
            and obj["spec"]["scaleTargetRef"]["name"] == "worker"
        ]

    assert scalers(rendered("k8s/overlays/demo")) == [("HorizontalPodAutoscaler", "worker")]
    objs = rendered("k8s/overlays/demo-operators")
    assert scalers(objs) == [("ScaledObject", "worker")]
    assert ("HorizontalPodAutoscaler", "web") in objs  # only the worker's is KEDA's
    hpa = rendered("k8s/base")[("HorizontalPodAutoscaler", "worker")]["spec"]
    scaled = objs[("ScaledObject", "worker")]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    cpu = next(t for t in scaled["triggers"] if t["type"] == "cpu")
    assert cpu["metadata"]["value"] == str(
        hpa["metrics"][0]["resource"]["target"]["averageUtilization"]
    )


def test_keda_reads_the_queue_the_workers_consume():
    from urllib.parse import urlsplit

    from config.celery_app import app

    objs = rendered("k8s/overlays/demo-operators")
    (redis,) = [
        t for t in objs[("ScaledObject", "worker")]["spec"]["triggers"] if t["type"] == "redis"
    ]
    # Every task goes to Celery's default queue: a Redis list of that name.
    assert app.conf.task_routes is None and app.conf.task_default_queue == "celery"
    assert redis["metadata"]["listName"] == app.conf.task_default_queue
    broker = urlsplit(objs[("ConfigMap", "qbuy-config")]["data"]["REDIS_URL"])
    assert redis["metadata"]["databaseIndex"] == broker.path.strip("/")
    # The same Redis, by the name KEDA's operator resolves from its own namespace.
    assert redis["metadata"]["address"] == f"{broker.hostname}.qbuy.svc.cluster.local:{broker.port}"
    assert ("Service", broker.hostname) in objs
    # Its password from the app's Secret, by a key the Secret has.
    auth = objs[("TriggerAuthentication", redis["authenticationRef"]["name"])]["spec"]
    (ref,) = auth["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["key"] in objs[("Secret", ref["name"])]["stringData"]
    # And the demo's Redis lets KEDA's operator in.
    keda = objs[("NetworkPolicy", "redis-from-keda")]["spec"]
    assert keda["podSelector"] == objs[("NetworkPolicy", "redis-from-app")]["spec"]["podSelector"]


def test_the_pod_monitors_scrape_every_process_by_its_job_name():
    objs = rendered("k8s/overlays/demo-operators")
    app = objs[("PodMonitor", "qbuy")]["spec"]
    assert app["jobLabel"] == "app.kubernetes.io/name"  # job="web", as compose names them
    assert app["selector"]["matchExpressions"][0]["values"] == list(APPS)
    assert [e["port"] for e in app["podMetricsEndpoints"]] == ["metrics"]
    flower = objs[("PodMonitor", "flower")]["spec"]
    assert flower["jobLabel"] == "app.kubernetes.io/name"
    (endpoint,) = flower["podMetricsEndpoints"]
    ports = [p["name"] for p in containers(objs, "flower")[0]["ports"]]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    for ref in endpoint["basicAuth"].values():
        assert ref["key"] in objs[("Secret", ref["name"])]["stringData"]
    policy = objs[("NetworkPolicy", "flower-from-monitoring")]["spec"]
    metrics = objs[("NetworkPolicy", "metrics-from-monitoring")]["spec"]
    assert policy["ingress"][0]["from"] == metrics["ingress"][0]["from"]


def test_the_prometheusrule_is_the_rule_files():
    committed = (lint.ROOT / "k8s/components/monitoring/prometheusrule.yaml").read_text()
    assert committed == prometheusrule.render(), "run `python -m tools.prometheusrule`"
    objs = rendered("k8s/overlays/demo-operators")
    for path in sorted(prometheusrule.RULES.glob("*.yml")):
        rule = objs[("PrometheusRule", f"qbuy-{path.stem}")]
        assert rule["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]


def test_custom_resources_are_checked_against_their_crds(tmp_path):
    """make lint refuses a ScaledObject whose trigger has no type, a misspelt PodMonitor
    field, and a custom resource of a kind nobody has a schema for."""
    k8s = tmp_path / "k8s"
    shutil.copytree(lint.ROOT / "k8s", k8s)
    overlay = k8s / "overlays/demo-operators"
    assert lint.kubernetes(overlay).returncode == 0

    scaled = k8s / "components/keda/scaledobject.yaml"
    good = scaled.read_text()
    scaled.write_text(good.replace("    - type: redis\n      metadata:", "    - metadata:", 1))
    result = lint.kubernetes(overlay)
    assert result.returncode != 0
    assert b"'type' is a required property" in result.stdout, result.stdout
    scaled.write_text(good)

    monitor = k8s / "components/monitoring/podmonitor.yaml"
    monitor.write_text(monitor.read_text().replace("jobLabel:", "jobLabels:", 1))
    result = lint.kubernetes(overlay)
    assert result.returncode != 0 and b"'jobLabels' was unexpected" in result.stdout

    add_resource(
        k8s / "components/keda",
        "scaledjob.yaml",
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: x}\nspec: {}\n",
        after="networkpolicy.yaml",
    )
    result = lint.kubernetes(overlay)
    assert result.returncode != 0 and b"no schema for keda.sh/v1alpha1 ScaledJob" in result.stdout


def test_a_kind_no_schema_knows_is_refused(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(lint.ROOT / "k8s/base", base)
    add_resource(
        base,
        "odd.yaml",
        "apiVersion: example.com/v1\nkind: Odd\nmetadata: {name: x}\n",
        after="namespace.yaml",
    )
    result = lint.kubernetes(base)
    assert result.returncode != 0 and b"Couldn't find schema for kind Odd" in result.stdout


def add_resource(folder, name: str, manifest: str, *, after: str) -> None:
    """Write ``manifest`` as ``name`` in a copied kustomization ``folder`` and list it there,
    after the resource ``after``."""
    (folder / name).write_text(manifest)
    kustomization = folder / "kustomization.yaml"
    listed = f"  - {after}\n"
    assert listed in kustomization.read_text()
    kustomization.write_text(kustomization.read_text().replace(listed, f"{listed}  - {name}\n"))
