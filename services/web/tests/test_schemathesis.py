"""The API contract run: Schemathesis generates requests from the OpenAPI document and checks
every answer of the live app against it.

The app runs as deployed (loadtests.rig: gunicorn from the web entry script, a `-P gevent`
worker and beat on throwaway Postgres and Redis, production settings over plain HTTP with the
SMS file backend). Calls carry a buyer's session, logged in through the API with a code read
from the SMS file. `make test` runs a bounded number of examples per operation; `make fuzz`
runs the same tests with many more (QBUY_FUZZ_EXAMPLES).

The operations come from the committed docs/openapi.json, read when the tests are collected
(one test per operation); test_served_document_is_the_committed_one makes that the document
the live app serves. Schemathesis' fixture loader (from_fixture) would read the served one,
but it sets ``Function._nodeid``, which pytest 9 no longer has (AttributeError).
"""

import json
import tempfile
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import settings

from loadtests.rig import Rig, deployed_settings
from tests import api_contract
from tools.stack import ROOT

SCHEMA_FILE = ROOT / "docs/openapi.json"

# Sales the generated ids land on: Hypothesis tries small integers first, so ids 1-4 exist and
# each gives the buy endpoint a different answer (open, not started, ended, sold out); 5 has a
# waiting room.
SALES = (
    ("Open kettle", 1000, "--per-buyer-limit", "3"),
    ("Future kettle", 10, "--starts-in", "3600"),
    ("Past kettle", 10, "--starts-in", "-7200", "--duration", "3600"),
    ("Sold-out kettle", 0),
    # Its waiting room is open (it starts in a minute): joins, places and a buy without a pass.
    ("Room kettle", 100, "--waiting-room", "--starts-in", "60"),
)

schema = schemathesis.openapi.from_dict(
    json.loads(SCHEMA_FILE.read_text()), config=api_contract.config()
)
# Buyers keeps its own shared buyer: no caching by Schemathesis.
schema.auth(refresh_interval=None)(api_contract.BuyerAuth)


@pytest.fixture(scope="module")
def live(request):
    with (
        tempfile.TemporaryDirectory(prefix="qbuy-schemathesis-") as tmp,
        Rig(Path(tmp), settings=deployed_settings(), concurrency=4) as rig,
    ):
        for name, stock, *extra in SALES:
            rig.create_sale(name, stock, *extra)
        rig.tally = api_contract.Tally()
        api_contract.Buyers.active = api_contract.Buyers(rig.url, rig.dir / "sms.jsonl")
        # The parametrized tests work on a copy of the schema made at collection: they are
        # given the URL per call.
        schema.config.base_url = rig.url
        try:
            yield rig
        finally:
            logins = api_contract.Buyers.active.logins
            api_contract.Buyers.active = schema.config.base_url = None
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print(
                    "",
                    *rig.tally.lines(),
                    f"  buyers logged in through the API: {logins}",
                    sep="\n",
                )


def test_served_document_is_the_committed_one(live):
    served = requests.get(f"{live.url}/api/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(SCHEMA_FILE.read_text())


@schema.parametrize()
def test_api_contract(case, live):
    """Every operation, every check, generated examples (positive and negative)."""
    live.tally.add(case.operation.label)
    api_contract.authenticate(case)
    case.call_and_validate(base_url=live.url)


def test_api_contract_stateful(live):
    """Scenarios that follow the document's links (e.g. buy -> poll the order it answered)."""

    class Scenario(schema.as_state_machine()):
        def setup(self):
            api_contract.Buyers.active.new_shared()

        def before_call(self, case):
            live.tally.add(f"{case.operation.label} (stateful)")
            api_contract.authenticate(case)

    Scenario.run(
        settings=settings(
            max_examples=api_contract.SCENARIOS,
            stateful_step_count=6,
            deadline=None,
            database=None,
        )
    )


def test_calls_carry_a_logged_in_buyer(live):
    """The harness's login works (else every authenticated operation would only meet 401s)."""
    case = schema["/api/auth/me"]["GET"].Case()
    api_contract.authenticate(case)
    answer = case.call(base_url=live.url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"]["phone"].startswith("+1")


def test_a_long_request_line_gets_the_apis_json_answer(live):
    """A query of 4-8 KB (nginx reads lines up to 8 KB) reaches Django, not gunicorn's HTML 414."""
    answer = requests.get(f"{live.url}/api/orders/?page={'9' * 6000}", timeout=10)
    assert answer.status_code == 401, answer.text[:200]
    assert answer.json() == {"error": "not_authenticated"}
