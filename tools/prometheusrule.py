"""The Prometheus Operator's copy of qbuy's rules: one PrometheusRule per rule file of
deploy/prometheus/rules/ (the files compose's Prometheus loads), written to
k8s/components/monitoring/prometheusrule.yaml.

    python -m tools.prometheusrule

The rule files are the source; tools/test_manifests.py fails when the committed manifest is not
what this writes from them.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy/prometheus/rules"
OUT = ROOT / "k8s/components/monitoring/prometheusrule.yaml"
HEADER = """\
# Written by `python -m tools.prometheusrule` from deploy/prometheus/rules/*.yml: edit those
# and run it again (tools/test_manifests.py fails when the two differ). One PrometheusRule per
# rule file, named qbuy-<file>; the groups are the files' own.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def manifests(rules: Path = RULES) -> list[dict]:
    out = []
    for path in sorted(rules.glob("*.yml")):
        groups = yaml.safe_load(path.read_text())["groups"]
        out.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": f"qbuy-{path.stem}"},
                "spec": {"groups": groups},
            }
        )
    if not out:
        raise FileNotFoundError(f"no rule files in {rules}")
    return out


def render(rules: Path = RULES) -> str:
    docs = [
        yaml.dump(m, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
        for m in manifests(rules)
    ]
    return HEADER + "---\n".join(docs)


def main() -> int:
    OUT.write_text(render())
    print(OUT.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
