"""The locks match their inputs: requirements/base.in and dev.in are compiled by `make lock`
into base.txt and dev.txt. An .in edited without re-locking, or a hand-edited .txt, fails here
(offline: the files are parsed, nothing is resolved)."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQS = Path(__file__).resolve().parents[1] / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def inputs(name: str) -> dict[str, Requirement]:
    """The requirements an .in file names itself (its -r/-c lines are checked separately)."""
    found = {}
    for line in (REQS / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            found[canonicalize_name(req.name)] = req
    return found


def lock(name: str) -> dict[str, dict]:
    """Each pin of a compiled file: its version, its hashes and what it is there for (the
    `# via` lines pip-compile writes)."""
    pins: dict[str, dict] = {}
    current = None
    for raw in (REQS / name).read_text().splitlines():
        line = raw.strip()
        if not raw.startswith((" ", "#")) and line:
            match = PIN.match(line)
            assert match, f"{name}: not an exact pin: {raw!r}"
            current = {"version": match[2], "hashes": [], "via": []}
            pins[canonicalize_name(match[1])] = current
        elif current is not None and line.startswith("--hash="):
            current["hashes"].append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current is not None and line.startswith("# via"):
            current["via"] += line.removeprefix("# via").split()
        elif current is not None and line.startswith("#   "):
            current["via"].append(line.removeprefix("#").strip())
    return pins


@pytest.mark.parametrize("name", ["base.txt", "dev.txt"])
def test_every_pin_is_hashed(name):
    pins = lock(name)
    assert pins
    unhashed = [pkg for pkg, pin in pins.items() if not pin["hashes"]]
    assert not unhashed, f"{name}: no --hash for {unhashed}: run make lock"
    for pin in pins.values():
        assert all(h.startswith("sha256:") and len(h) == 71 for h in pin["hashes"]), pin


@pytest.mark.parametrize(
    ("source", "compiled"), [("base.in", "base.txt"), ("dev.in", "dev.txt"), ("base.in", "dev.txt")]
)
def test_every_input_is_locked_at_its_version(source, compiled):
    pins = lock(compiled)
    for pkg, req in inputs(source).items():
        assert pkg in pins, f"{pkg} is in {source} but not in {compiled}: run make lock"
        version = pins[pkg]["version"]
        assert req.specifier.contains(version, prereleases=True), (
            f"{compiled} pins {pkg}=={version}, {source} asks for {req.specifier}: run make lock"
        )


@pytest.mark.parametrize(
    ("source", "compiled"), [("base.in", "base.txt"), ("dev.in", "dev.txt"), ("base.in", "dev.txt")]
)
def test_no_pin_is_left_from_a_removed_input(source, compiled):
    """What the lock says came from the .in file is what the .in file names today."""
    named = set(inputs(source))
    claimed = {pkg for pkg, pin in lock(compiled).items() if f"-r {source}" in " ".join(pin["via"])}
    assert claimed == named, f"{compiled} is stale against {source}: run make lock"


def test_dev_lock_holds_base_lock_at_the_same_versions():
    """`make venv` installs dev.txt alone: it must carry every runtime pin, unchanged."""
    base, dev = lock("base.txt"), lock("dev.txt")
    assert {pkg: pin["version"] for pkg, pin in base.items()} == {
        pkg: dev[pkg]["version"] for pkg in base if pkg in dev
    }
    assert set(base) <= set(dev), f"missing from dev.txt: {set(base) - set(dev)}"
    lines = (REQS / "dev.in").read_text().splitlines()
    assert "-r base.in" in lines and "-c base.txt" in lines


def test_inputs_pin_exact_versions():
    """Direct dependencies are pinned too: a lock re-run moves nothing by itself."""
    for source in ("base.in", "dev.in"):
        for pkg, req in inputs(source).items():
            assert [s.operator for s in req.specifier] == ["=="], f"{source}: {pkg} {req}"
