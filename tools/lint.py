"""`make lint`: every static check, offline. Each check is a function the tests also call on
broken copies, to show it fails the build on a real error."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
KUSTOMIZATIONS = [
    ROOT / "k8s/base",
    ROOT / "k8s/overlays/demo",
    ROOT / "k8s/overlays/demo-operators",
]
# Custom resources (KEDA's, the Prometheus Operator's): the CRDs' schemas, vendored as JSON
# Schema by tools/crd_schemas.py (k8s/schemas/README.md), named <group>/<kind>_<version>.json.
CRD_SCHEMAS = ROOT / "k8s/schemas"


def run(*cmd, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, capture_output=True, cwd=ROOT, check=False)


def ruff() -> list[subprocess.CompletedProcess]:
    return [run(str(BIN / "ruff"), "check", "."), run(str(BIN / "ruff"), "format", "--check", ".")]


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    return run(str(BIN / "hadolint"), str(dockerfile))


def compose(path: Path) -> subprocess.CompletedProcess:
    schema = "vendor.compose-spec"  # the Compose Specification schema, vendored offline
    return run(str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path))


def kubernetes(kustomization: Path) -> subprocess.CompletedProcess:
    """kustomize's output, every object checked offline against its schema: Kubernetes' own
    kinds by kubernetes-validate, custom resources by check-jsonschema against the vendored CRD
    schemas. An object neither knows fails (kubernetes-validate only warns about it)."""
    built = run(str(BIN / "kubectl"), "kustomize", str(kustomization))
    if built.returncode:
        return built
    core, custom = [], []
    for text in re.split(rb"^---\n", built.stdout, flags=re.MULTILINE):
        obj = yaml.safe_load(text)
        if obj:
            (custom if _is_custom(obj) else core).append((text, obj))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "core.yaml"
        manifest.write_bytes(b"---\n".join(text for text, _ in core))
        results = [run(str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(manifest))]
        results += [_custom_resource(obj, Path(tmp)) for _, obj in custom]
    unknown = [r for r in results if b"Couldn't find schema" in r.stdout + r.stderr]
    failed = [r for r in results if r.returncode or r in unknown]
    out = b"".join(r.stdout + r.stderr for r in failed)
    return subprocess.CompletedProcess(built.args, 1 if failed else 0, out, b"")


def _is_custom(obj: dict) -> bool:
    group = obj.get("apiVersion", "").rpartition("/")[0]
    return (CRD_SCHEMAS / group).is_dir() if group else False


def _custom_resource(obj: dict, tmp: Path) -> subprocess.CompletedProcess:
    group, _, version = obj["apiVersion"].rpartition("/")
    schema = CRD_SCHEMAS / group / f"{obj['kind'].lower()}_{version}.json"
    name = f"{obj['kind']}/{obj['metadata']['name']}"
    if not schema.exists():
        message = f"{name}: no schema for {obj['apiVersion']} {obj['kind']} in {CRD_SCHEMAS}\n"
        return subprocess.CompletedProcess([], 1, message.encode(), b"")
    instance = tmp / f"{obj['kind']}-{obj['metadata']['name']}.json"
    instance.write_text(json.dumps(obj))
    # Kubernetes' patterns are Go's RE2 (e.g. "(?i)"): Python's re reads them, ECMA's does not.
    return run(
        str(BIN / "check-jsonschema"),
        *("--schemafile", str(schema), "--regex-variant", "python", str(instance)),
    )


def nginx(conf: Path) -> subprocess.CompletedProcess:
    """nginx -t on the template as `make local` renders it (compose's upstream, `web`, resolves
    only inside compose)."""
    from tools.local import render_nginx

    with tempfile.TemporaryDirectory() as prefix:
        rendered = Path(prefix) / "nginx.conf"
        result = render_nginx(rendered, dict(os.environ), template=conf)
        if result.returncode:
            return result
        return run("nginx", "-t", "-p", prefix, "-c", str(rendered))


def main() -> int:
    checks = [("ruff", r) for r in ruff()]
    checks += [(f"hadolint {d.relative_to(ROOT)}", hadolint(d)) for d in DOCKERFILES]
    checks.append(("compose deploy/compose.yml", compose(ROOT / "deploy/compose.yml")))
    checks += [(f"kubernetes {k.relative_to(ROOT)}", kubernetes(k)) for k in KUSTOMIZATIONS]
    checks.append(("nginx -t deploy/nginx.conf", nginx(ROOT / "deploy/nginx.conf")))
    failed = 0
    for name, result in checks:
        ok = result.returncode == 0
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            sys.stdout.write((result.stdout + result.stderr).decode(errors="replace"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
