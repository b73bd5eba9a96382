"""The pieces of the API contract run (test_schemathesis.py, `make fuzz`): how many examples,
Schemathesis' configuration, and buyers logged in over HTTP for the authenticated calls.

Kept out of the test module so the harness reads as: servers, schema, one test per operation.
"""

import os
import threading
from collections import Counter

import requests
import schemathesis

from loadtests.storm import log_in_buyers, sms_file_codes

# Examples per operation and phase: enough for `make test` to try every documented answer of
# every operation in about a minute; `make fuzz` raises it (QBUY_FUZZ_EXAMPLES=1000).
DEFAULT_EXAMPLES = 30
EXAMPLES = int(os.environ.get("QBUY_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES)
# Stateful scenarios (login -> buy -> poll the order); a tenth of the examples, at least 5.
SCENARIOS = max(5, EXAMPLES // 10)

# Schemathesis' default for positive_data_acceptance (a 5xx fails not_a_server_error anyway).
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

# The operations that end the session they are sent with: each gets a buyer of its own, so
# the shared buyer stays logged in for the rest of the run.
SESSION_ENDING = frozenset({"/api/auth/logout", "/api/auth/logout-all"})

# Buyers' phones start far from any example phone in the document (+1201555NNNN): the API
# limits how often one phone may ask for a code, and a generated request may use an example.
FIRST_BUYER = 500_000


def config() -> schemathesis.Config:
    """Every check on (Schemathesis 4 enables them all by default; named here so that a
    default changing upstream does not switch one off silently)."""
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "max-examples": EXAMPLES,
                # No .hypothesis/ folder in the work tree: a failure prints how to replay it.
                "database": "none",
                # The API ignores query parameters it does not know (?utm_source=... on a
                # shared link), as HTTP APIs do: an unknown one is no invalid request.
                "allow-extra-parameters": False,
            },
            "suppress-health-check": ["too_slow", "filter_too_much"],
            "request-timeout": 30,
            "checks": {
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
                "response_headers_conformance": {"enabled": True},
                "negative_data_rejection": {"enabled": True},
                "positive_data_acceptance": {"enabled": True},
            },
            # Where a schema-valid request may still be refused: what JSON Schema cannot say.
            "operations": [
                positive_also("/api/auth/code", 400),  # invalid_phone: libphonenumber's metadata
                positive_also("/api/auth/login", 400),  # invalid_code: a code the server sent
                # over_limit (the sale's per_buyer_limit) and ended (the sale's window).
                positive_also("/api/sales/{pk}/buy", 400, 410),
            ],
        }
    )


def positive_also(path: str, *statuses: int) -> dict:
    """Schemathesis' positive_data_acceptance for ``path``, with ``statuses`` also accepted."""
    expected = [*POSITIVE_DEFAULT, *map(str, statuses)]
    return {
        "include-path": path,
        "checks": {"positive_data_acceptance": {"expected-statuses": expected}},
    }


class Buyers:
    """Buyers logged in through the API as a client would: /api/auth/csrf, /api/auth/code, the
    code read from the SMS file backend, /api/auth/login."""

    # The live app's buyers while its fixture runs (the schema is made at collection).
    active: "Buyers | None" = None

    def __init__(self, url: str, sms_file):
        self.url = url
        self.read_codes = sms_file_codes(sms_file)
        self.next = FIRST_BUYER
        self.logins = 0
        self._shared: requests.Session | None = None

    def log_in(self) -> requests.Session:
        first, self.next = self.next, self.next + 1
        self.logins += 1
        return log_in_buyers(self.url, self.read_codes, 1, first=first, threads=1)[0]

    def new_shared(self) -> None:
        """A new buyer for the calls to come (a stateful scenario starts with one who has
        bought nothing, so its buy can be answered 202 and the order polled)."""
        self._shared = self.log_in()

    @property
    def shared(self) -> requests.Session:
        if self._shared is None:
            self._shared = self.log_in()
        return self._shared

    def credentials(self, path: str) -> dict[str, str]:
        """The session and CSRF cookies and the CSRF token for a call to ``path``."""
        session = self.log_in() if path in SESSION_ENDING else self.shared
        return {**session.cookies.get_dict(), "X-CSRFToken": session.headers["X-CSRFToken"]}


class BuyerAuth:
    """Schemathesis auth provider: the live app's buyer (its session and CSRF cookies) with
    every call, and Django's X-CSRFToken header. Registered on the schema, so Schemathesis
    knows the credentials are real (its ignored_auth check then removes them and expects
    401/403)."""

    def get(self, case, ctx):
        # None while the tests are collected: see authenticate().
        return None if Buyers.active is None else Buyers.active.credentials(case.operation.path)

    def set(self, case, data, ctx):
        data = dict(data)
        case.headers = {**(case.headers or {}), "X-CSRFToken": data.pop("X-CSRFToken")}
        # Generated cookies (negative cases) first: the buyer's must be the ones sent.
        case.cookies = {**(case.cookies or {}), **data}


def authenticate(case) -> None:
    """Give ``case`` its buyer if Schemathesis could not: the coverage phase's cases are made
    when the tests are collected, before any server exists. A case whose credentials were
    removed on purpose (a negative case) is left alone."""
    schema = case.operation.schema
    if case._has_explicit_auth or schema.is_security_param_negated(case):
        return
    schema.auth.set(case, schemathesis.AuthContext(operation=case.operation, app=None))


class Tally:
    """Calls made per operation, printed at the end of the run (the lead's closing note)."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, label: str) -> None:
        with self.lock:
            self.calls[label] += 1

    def lines(self) -> list[str]:
        width = max((len(label) for label in self.calls), default=0)
        rows = [f"  {label:<{width}}  {n:>6}" for label, n in sorted(self.calls.items())]
        total = sum(self.calls.values())
        operations = {label.removesuffix(" (stateful)") for label in self.calls}
        return [
            f"Schemathesis: {len(operations)} operations, {total} calls "
            f"(up to {EXAMPLES} generated examples per operation and phase)",
            *rows,
        ]
