"""What DESIGN.md and the container issue ask of the manifests, checked on kustomize's output."""

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
