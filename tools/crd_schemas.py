"""The JSON Schemas `make lint` checks custom resources against, extracted from the projects'
CustomResourceDefinitions (k8s/schemas/README.md says which files, from which release).

    python -m tools.crd_schemas keda.sh_scaledobjects.yaml ... (CRD files, or - for stdin)

Each served version of each CRD becomes ``k8s/schemas/<group>/<kind>_<version>.json``: its
``openAPIV3Schema`` with mechanical changes that make a JSON Schema validator judge an
object as the API server does (``kubectl apply`` with strict field validation, the default):

- an object schema that lists its ``properties`` admits no others (``additionalProperties:
  false``) unless it says ``x-kubernetes-preserve-unknown-fields``: the API server refuses an
  unknown field, a plain JSON Schema would let a misspelt ``trigers:`` through;
- ``nullable: true`` (OpenAPI 3.0) becomes ``null`` among the allowed types;
- a pattern's flags go first (``^(?i)x`` becomes ``(?i)^x``): Go's RE2 takes them anywhere,
  Python's ``re``, which check-jsonschema is told to use (``make lint``), only at the start.

What stays unchecked offline: the CEL rules (``x-kubernetes-validations``) and the OpenAPI
formats JSON Schema does not know (int32, int64).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "k8s/schemas"
# OpenAPI 3.0's schema object is a subset of draft 4 (exclusiveMinimum is a boolean there too).
DIALECT = "http://json-schema.org/draft-04/schema#"


LEADING_FLAGS = re.compile(r"^(\^)(\(\?[a-zA-Z]+\))")
SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
SUBSCHEMAS = ("items", "additionalProperties", "not")


def strict(schema: dict) -> dict:
    """``schema`` with the changes of the module's docstring, at every level."""
    out = dict(schema)
    for key in SUBSCHEMA_MAPS:
        if key in out:
            out[key] = {name: strict(s) for name, s in out[key].items()}
    for key in SUBSCHEMA_LISTS:
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    for key in SUBSCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
        elif isinstance(out.get(key), list):  # draft 4's tuple form of items
            out[key] = [strict(s) for s in out[key]]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "pattern" in out:
        out["pattern"] = LEADING_FLAGS.sub(r"\2^", out["pattern"])
    return out


def schemas(crd: dict) -> dict[Path, dict]:
    """Relative path -> JSON Schema, one per served version of ``crd``."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: {crd.get('kind')}")
    spec = crd["spec"]
    out = {}
    for version in spec["versions"]:
        if not version.get("served"):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        api_version = f"{spec['group']}/{version['name']}"
        # The file is for one apiVersion and kind: anything else given to it is refused.
        schema["properties"]["apiVersion"] = {"enum": [api_version]}
        schema["properties"]["kind"] = {"enum": [spec["names"]["kind"]]}
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        name = f"{spec['names']['kind'].lower()}_{version['name']}.json"
        out[Path(spec["group"]) / name] = {"$schema": DIALECT, **schema}
    return out


def write(crd_files: list[Path], out: Path = OUT) -> list[Path]:
    written = []
    for crd_file in crd_files:
        text = sys.stdin.read() if str(crd_file) == "-" else crd_file.read_text()
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            for relative, schema in schemas(doc).items():
                path = out / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files (- for stdin)")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args(argv)
    for path in write(opts.crds, opts.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
