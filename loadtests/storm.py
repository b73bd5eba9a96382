"""The client side of a flash-sale storm: log buyers in with SMS codes, fire buy requests all
at once, summarize the answers. HTTP only (requests + threads, no Django), so the same code
drives the native storm tests, the container stack suite, the fault suite and Locust.

The server side of the check is ``orders.invariants`` (``manage.py check_invariants``): feed it
``summary(answers)["accepted"]``, the tokens answered 202.
"""

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import requests

TIMEOUT = 30  # seconds, per request while logging in
BUY_TIMEOUT = 60  # seconds, per buy request (a storm queues at the web workers)
CODES_WAIT = 10  # seconds to wait for every phone's SMS code to show up


class StormError(RuntimeError):
    """The stack refused a step of the set-up (asking a code, logging in)."""


class Answer(NamedTuple):
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    body: dict
    seconds: float


# Buyers' phones: +1 <area> 555 <4 digits>. Valid US numbers (the web refuses unassigned
# ranges such as +1555...), in the 555 exchange that directories keep for fiction, in 100 area
# codes: 1,000,000 distinct phones.
AREA_CODES = (  # noqa: SIM905 (a hundred quoted strings would take a hundred lines)
    "201 202 203 205 206 207 208 209 210 212 213 214 215 216 217 218 219 224 225 228"
    " 229 231 234 239 240 248 251 252 253 254 256 260 262 267 269 270 276 281 301 302"
    " 303 304 305 307 308 309 310 312 313 314 315 316 317 318 319 320 321 323 325 330"
    " 334 336 337 339 347 351 352 360 361 386 401 402 404 405 406 407 408 409 410 412"
    " 413 414 415 417 419 423 425 430 432 434 435 440 443 469 478 479 480 484 501 502"
).split()
PHONES = len(AREA_CODES) * 10_000


def phone(n: int) -> str:
    """The ``n``-th buyer's phone, 0 <= n < PHONES."""
    if not 0 <= n < PHONES:
        raise ValueError(f"buyer {n}: only {PHONES} phones (add area codes to AREA_CODES)")
    area, line = divmod(n, 10_000)
    return f"+1{AREA_CODES[area]}555{line:04d}"


def parse_codes(text: str) -> dict[str, str]:
    """phone -> code from the SMS ``file`` backend's JSON lines {"phone", "code", ...}; later
    lines win."""
    codes = {}
    for line in text.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        codes[message["phone"]] = message["code"]
    return codes


def sms_file_codes(path) -> Callable[[], dict[str, str]]:
    """read_codes for the SMS ``file`` backend writing to ``path`` on this machine."""
    path = Path(path)
    return lambda: parse_codes(path.read_text()) if path.exists() else {}


class SmsFileTail:
    """read_codes for the SMS ``file`` backend that reads only what was appended since its last
    call: one per client process, shared by all its buyers (thousands of buyers each parsing the
    whole file again would cost O(n²))."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.partial = b""  # a line being written right now
        self.codes: dict[str, str] = {}

    def __call__(self) -> dict[str, str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return self.codes
        self.offset += len(chunk)
        complete, _, self.partial = (self.partial + chunk).rpartition(b"\n")
        if complete:
            self.codes.update(parse_codes(complete.decode()))
        return self.codes


def log_in_buyers(
    url: str,
    read_codes: Callable[[], dict[str, str]],
    count: int,
    *,
    first: int = 0,
    threads: int = 32,
) -> list[requests.Session]:
    """Log in ``count`` buyers (phones ``phone(n)`` from ``first``) over HTTP; one session each,
    with the X-CSRFToken header set for the API."""
    url = url.rstrip("/")
    phones = [phone(n) for n in range(first, first + count)]
    sessions = {p: requests.Session() for p in phones}

    def ask_code(p):
        s = sessions[p]
        r = s.get(f"{url}/api/auth/csrf", timeout=TIMEOUT)
        _expect(r, 200, f"GET /api/auth/csrf for {p}")
        s.headers["X-CSRFToken"] = r.json()["csrf_token"]
        r = s.post(f"{url}/api/auth/code", json={"phone": p}, timeout=TIMEOUT)
        _expect(r, 202, f"POST /api/auth/code for {p}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(ask_code, phones))

    # Codes may be written (or delivered) a little after the 202.
    deadline = time.monotonic() + CODES_WAIT
    while True:
        codes = read_codes()
        missing = [p for p in phones if p not in codes]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise StormError(f"no SMS code for {len(missing)} phones, e.g. {missing[:3]}")
        time.sleep(0.2)

    def log_in(p):
        s = sessions[p]
        r = s.post(f"{url}/api/auth/login", json={"phone": p, "code": codes[p]}, timeout=TIMEOUT)
        _expect(r, 200, f"POST /api/auth/login for {p}")
        # Django rotates the CSRF token at login.
        s.headers["X-CSRFToken"] = s.cookies["csrftoken"]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(log_in, phones))
    return list(sessions.values())


def _expect(r: requests.Response, status: int, what: str) -> None:
    if r.status_code != status:
        raise StormError(f"{what}: {r.status_code}, expected {status}: {r.text[:500]}")


def buy(url: str, sale_id: int, session: requests.Session) -> Answer:
    """One buy request; never raises: no answer is status 0, a non-JSON body is kept short."""
    t0 = time.monotonic()
    try:
        r = session.post(f"{url.rstrip('/')}/api/sales/{sale_id}/buy", json={}, timeout=BUY_TIMEOUT)
    except requests.RequestException as exc:
        body = {"error": "connection_error", "text": str(exc)[:200]}
        return Answer(0, body, time.monotonic() - t0)
    seconds = time.monotonic() - t0
    try:
        body = r.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"error": "non_json", "text": r.text[:200]}
    return Answer(r.status_code, body, seconds)


def fire(
    url: str,
    sale_id: int,
    sessions: Iterable[requests.Session],
    *,
    attempts_per_buyer: int = 3,
    threads: int = 100,
    on_answer: Callable[[Answer], None] | None = None,
) -> list[Answer]:
    """Every buyer asks ``attempts_per_buyer`` times, ``threads`` requests at once.
    ``on_answer`` sees each answer as it arrives (a fault injected mid-storm keys on it)."""
    attempts = [s for s in sessions for _ in range(attempts_per_buyer)]

    def one(session: requests.Session) -> Answer:
        answer = buy(url, sale_id, session)
        if on_answer is not None:
            on_answer(answer)
        return answer

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, attempts))


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(answers: Iterable[Answer]) -> dict:
    """Counts by status, refusals by error code, the tokens answered 202, p50/p99 seconds."""
    answers = list(answers)
    seconds = sorted(a.seconds for a in answers)
    return {
        "requests": len(answers),
        "statuses": dict(Counter(a.status for a in answers)),
        "refusals": dict(Counter(a.body.get("error", "?") for a in answers if a.status != 202)),
        "accepted": [a.body["order"] for a in answers if a.status == 202 and "order" in a.body],
        "p50": _quantile(seconds, 0.50),
        "p99": _quantile(seconds, 0.99),
    }


def format_summary(s: dict) -> str:
    def secs(v):
        return "-" if v is None else f"{v:.3f}s"

    return (
        f"{s['requests']} requests; answers: {s['statuses']}; refusals: {s['refusals']}; "
        f"{len(s['accepted'])} accepted; p50 {secs(s['p50'])}, p99 {secs(s['p99'])}"
    )
