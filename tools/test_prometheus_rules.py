"""The Prometheus rules (deploy/prometheus/rules) and the Grafana dashboard (deploy/grafana).

promtool checks the rule files and runs their unit tests (deploy/prometheus/tests). Then every
PromQL expression, the dashboard's and the rules', is read for the metric names it asks for,
and each name must be a recording rule of recording.yml or a sample in a real scrape: web,
worker and beat started from their entry scripts with METRICS_PORT, after a login and a buy,
and Debian's exporters (the versions compose runs) against the same Redis, Postgres and nginx.
A renamed metric then fails here instead of leaving an empty panel or an alert that never fires.
"""

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from port_for import get_port
from prometheus_client.parser import text_string_to_metric_families

from loadtests import storm
from loadtests.rig import Rig, deployed_settings
from tools import devservers
from tools.stack import ROOT, Process

RULES = ROOT / "deploy/prometheus/rules"
RULE_TESTS = ROOT / "deploy/prometheus/tests"
DASHBOARD = ROOT / "deploy/grafana/qbuy-sale.json"
RUNBOOK = ROOT / "docs/watching-a-sale.md"
# Series Prometheus makes itself for every target, not found in any scrape.
PROMETHEUS_SERIES = {"up"}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _rules(kind: str) -> list[dict]:
    """Every rule of the rule files that has ``kind`` ("record" or "alert")."""
    return [
        rule
        for path in sorted(RULES.glob("*.yml"))
        for group in _yaml(path)["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [devservers.which("promtool"), *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("path", sorted(RULES.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_checks_the_rule_file(path):
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", sorted(RULE_TESTS.glob("*.yml")), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path):
    done = promtool("test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent():
    tested = [
        case
        for path in RULE_TESTS.glob("*.yml")
        for test in _yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in _rules("alert"):
        cases = [case for case in tested if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in cases), f"{rule['alert']}: never fires"
        assert any(not case["exp_alerts"] for case in cases), f"{rule['alert']}: never silent"


def test_every_recording_rule_is_tested():
    tested = {
        case["expr"]
        for path in RULE_TESTS.glob("*.yml")
        for test in _yaml(path)["tests"]
        for case in test.get("promql_expr_test", [])
    }
    assert {rule["record"] for rule in _rules("record")} <= tested


def test_every_alert_tells_the_on_call_what_to_look_at():
    anchors = {
        heading.lower().replace("`", "")
        for heading in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)
    }
    for rule in _rules("alert"):
        name = rule["alert"]
        assert rule.get("for"), f"{name}: no `for:`, one bad scrape would page"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook"] == f"docs/watching-a-sale.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no section in {RUNBOOK.name}"


def test_the_dashboard_imports_with_a_datasource_input():
    board = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]


def test_promtool_parses_the_dashboard_queries(tmp_path):
    """promtool parses the rules' PromQL; each dashboard query gets the same check as the
    expression of a recording rule."""
    rules = [
        {"record": f"dashboard:query:{i}", "expr": expr}
        for i, (_, expr) in enumerate(_dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# --- the metric names an expression asks for ---------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<variable>\$\{\w+\}|\$\w+)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<open>[{\[(])
  | (?P<close>[}\])])
  | (?P<operator>[^\s\w"'`{}\[\]()$]+)
    """,
    re.X,
)
_CLOSES = {"{": "}", "[": "]", "(": ")"}
# Words of the language, never metric names (PromQL reads them in any case).
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
_AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
}  # fmt: skip
# Followed by a parenthesised list of label names.
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read {expr[at:]!r} in {expr!r}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group()))
        at = match.end()
    return tokens


def _skip_group(tokens: list[tuple[str, str]], at: int, expr: str) -> int:
    """Index after the bracket opened at ``at`` and its matching close: label matchers, a range
    or a label list hold label names and values, durations, never a metric name."""
    depth = 0
    for i in range(at, len(tokens)):
        kind, text = tokens[i]
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
            if depth == 0:
                if text != _CLOSES[tokens[at][1]]:
                    raise ValueError(f"unbalanced brackets in {expr!r}")
                return i + 1
        elif kind == "ident" and text == "__name__" and tokens[at][1] == "{":
            raise ValueError(f"name the metric before its braces, not in them: {expr!r}")
    raise ValueError(f"unbalanced brackets in {expr!r}")


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names a PromQL expression selects."""
    tokens, names, at, parens = _tokens(expr), set(), 0, 0
    while at < len(tokens):
        kind, text = tokens[at]
        following = tokens[at + 1] if at + 1 < len(tokens) else ("", "")
        if kind == "open" and text in "{[":
            at = _skip_group(tokens, at, expr)
            continue
        if kind in ("open", "close"):
            parens += 1 if text == "(" else -1
            if parens < 0 or text not in "()":
                raise ValueError(f"unbalanced brackets in {expr!r}")
        if kind == "ident":
            word = text.lower()
            if word in _LABEL_LISTS and following[1] == "(":
                at = _skip_group(tokens, at + 1, expr)
                continue
            if (
                word not in _KEYWORDS | _AGGREGATORS | _LABEL_LISTS
                and following[1] != "("  # a function's name
            ):
                names.add(text)
        at += 1
    if parens:
        raise ValueError(f"unbalanced brackets in {expr!r}")
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (outcome) (rate(qbuy_buy_answers_total{outcome="ac}cepted",view=~"a(b"}[1m]))',
            {"qbuy_buy_answers_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (view, le) (rate(x_bucket[$__rate_interval])))",
            {"x_bucket"},
        ),
        ("a / on (job, instance) group_left (role) b offset 1h30m", {"a", "b"}),
        ("SUM BY (x) (up) unless count without (y) (z) > bool 1e3", {"up", "z"}),
        ("max_over_time(deriv(q[5m])[10m:30s]) @ end() * -Inf", {"q"}),
        (
            "outcome:qbuy_buy_answers:rate1m / ignoring(outcome) 2",
            {"outcome:qbuy_buy_answers:rate1m"},
        ),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
    ],
)
def test_metric_names_reads_promql(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ['{__name__="x"}', "sum(rate(x[1m])", "x{a='b']"])
def test_metric_names_refuses_what_it_cannot_check(expr):
    with pytest.raises(ValueError):
        metric_names(expr)


# --- real scrapes ------------------------------------------------------------------------------


def _metrics_url(rig: Rig, name: str) -> str:
    """Where the rig's ``name`` serves its metrics (loadtests.rig gives each a port)."""
    return f"http://127.0.0.1:{rig.processes[name].env['METRICS_PORT']}/metrics"


def _sample_names(url: str) -> set[str]:
    text = requests.get(url, timeout=10).text
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def _exporter(rig: Rig, name: str, command: list[str], **env: str) -> tuple[Process, int]:
    port = get_port(None)
    command = [devservers.which(command[0]), *command[1:], f"--web.listen-address=127.0.0.1:{port}"]
    proc = Process(name, {"PATH": "/usr/bin:/bin", **env}, rig.dir, "", command=command)
    proc.start()
    devservers.wait_for_port(port, timeout=20)
    return proc, port


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Iterator[set[str]]:
    """Every sample name a real scrape of each process of a sale shows."""
    workdir = tmp_path_factory.mktemp("scrape")
    status_port = get_port(None)
    settings = {**deployed_settings(), "NGINX_STATUS_LISTEN": f"127.0.0.1:{status_port}"}
    exporters = []
    with Rig(workdir, settings=settings, nginx=True, supervise=False) as rig:
        try:
            (session,) = storm.log_in_buyers(
                rig.url, storm.sms_file_codes(workdir / "sms.jsonl"), 1
            )
            sale = rig.create_sale("Scraped", 5)
            started = time.time()
            answer = storm.buy(rig.url, sale, session)
            assert answer.status == 202, answer
            assert rig.wait_settled(sale, started + 1, timeout=30)[0] == 0
            # The worker counts an order settled just after its batch's COMMIT.
            worker = _metrics_url(rig, "worker")
            deadline = time.monotonic() + 10
            while "qbuy_order_settle_seconds_count" not in _sample_names(worker):
                assert time.monotonic() < deadline, "the worker never counted the order settled"
                time.sleep(0.2)

            redis, redis_port = _exporter(rig, "redis-exporter", ["prometheus-redis-exporter"])
            postgres, postgres_port = _exporter(
                rig,
                "postgres-exporter",
                ["prometheus-postgres-exporter"],
                DATA_SOURCE_NAME=f"{rig.postgres.url}?sslmode=disable",
            )
            nginx, nginx_port = _exporter(
                rig,
                "nginx-exporter",
                [
                    "prometheus-nginx-exporter",
                    f"-nginx.scrape-uri=http://127.0.0.1:{status_port}/stub_status",
                ],
            )
            exporters += [redis, postgres, nginx]
            # As compose's Prometheus asks the one redis exporter: a target per scrape.
            urls = [
                f"http://127.0.0.1:{redis_port}/scrape?target={rig.redis.url}",
                f"http://127.0.0.1:{postgres_port}/metrics",
                f"http://127.0.0.1:{nginx_port}/metrics",
            ]
            urls += [_metrics_url(rig, name) for name in ("web", "worker", "beat")]
            names: set[str] = set()
            for url in urls:
                names |= _sample_names(url)
            yield names
        finally:
            for proc in exporters:
                proc.stop()


def _dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (f"dashboard panel {panel['title']!r}", target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def _expressions() -> list[tuple[str, str]]:
    """(where, expression) for every query of the dashboard and every rule."""
    found = _dashboard_queries()
    for kind in ("record", "alert"):
        found += [(f"{kind} {rule[kind]}", rule["expr"]) for rule in _rules(kind)]
    return found


def test_every_query_names_metrics_of_a_real_scrape(scraped):
    recorded = {rule["record"]: rule["expr"] for rule in _rules("record")}
    known = scraped | PROMETHEUS_SERIES
    unknown = []
    for where, expr in _expressions():
        for name in sorted(metric_names(expr)):
            # Recorded names look like level:metric:operation; one that is not recorded is a typo.
            if name not in known and name not in recorded:
                unknown.append(f"{where}: {name} (in {expr.strip()!r})")
    assert not unknown, "names in no scrape and no recording rule:\n" + "\n".join(unknown)
