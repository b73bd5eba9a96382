"""Each `make lint` check passes on the real files and fails on a broken copy."""

import shutil

import pytest

from tools import lint


def test_the_real_files_pass():
    results = [lint.hadolint(d) for d in lint.DOCKERFILES]
    results.append(lint.compose(lint.ROOT / "deploy/compose.yml"))
    results += [lint.kubernetes(k) for k in lint.KUSTOMIZATIONS]
    results.append(lint.nginx(lint.ROOT / "deploy/nginx.conf"))
    assert len(lint.DOCKERFILES) == 3
    assert [r.returncode for r in results] == [0] * len(results), [r.stdout for r in results]


def test_hadolint_catches_an_unpinned_base_image(tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = lint.hadolint(broken)
    assert result.returncode != 0
    assert b"DL3007" in result.stdout  # "latest" tag


def test_compose_schema_catches_a_bad_condition(tmp_path):
    text = (lint.ROOT / "deploy/compose.yml").read_text()
    broken = tmp_path / "compose.yml"
    broken.write_text(text.replace("condition: service_healthy", "condition: when_ready", 1))
    assert lint.compose(broken).returncode != 0


@pytest.mark.parametrize(
    "old, new",
    [
        ("replicas: 2", 'replicas: "two"'),  # wrong type
        (
            "containerPort: 8000",
            "containerPort: 8000\n              hostPorts: 8000",
        ),  # unknown field
    ],
)
def test_kubernetes_schema_catches_a_broken_manifest(tmp_path, old, new):
    base = tmp_path / "base"
    shutil.copytree(lint.ROOT / "k8s/base", base)
    web = base / "web.yaml"
    web.write_text(web.read_text().replace(old, new, 1))
    assert lint.kubernetes(base).returncode != 0


def test_kustomize_catches_a_missing_resource(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(lint.ROOT / "k8s/base", base)
    (base / "beat.yaml").unlink()
    assert lint.kubernetes(base).returncode != 0


def test_nginx_catches_an_unknown_rate_limit_zone(tmp_path):
    text = (lint.ROOT / "deploy/nginx.conf").read_text()
    broken = tmp_path / "nginx.conf"
    broken.write_text(text.replace("zone=buys burst", "zone=nope burst", 1))
    result = lint.nginx(broken)
    assert result.returncode != 0
    assert b"nope" in result.stderr
