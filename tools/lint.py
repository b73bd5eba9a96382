"""`make lint`: every static check, offline. Each check is a function the tests also call on
broken copies, to show it fails the build on a real error."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
KUSTOMIZATIONS = [ROOT / "k8s/base", ROOT / "k8s/overlays/demo"]


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
    built = run(str(BIN / "kubectl"), "kustomize", str(kustomization))
    if built.returncode:
        return built
    with tempfile.NamedTemporaryFile(suffix=".yaml") as manifest:
        manifest.write(built.stdout)
        manifest.flush()
        return run(str(BIN / "kubernetes-validate"), "--strict", "--quiet", manifest.name)


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
