"""The flash sale as people live it, for Locust; `make loadtest` runs it (loadtests/loadtest.py).

One Locust user is one buyer, once: it logs in with an SMS code (the protocol of
``storm.log_in_buyers``, the code read from the SMS ``file`` backend's file), opens the sale page,
waits for the sale's start as the API gives it, presses buy (again after a short pause on
not_started, 429, 5xx or no answer, a bounded number of times, as a person would), polls its
order until it settles, then stops. The run is over when every buyer is done: the driver watches
the events below and stops Locust.

A sale with a waiting room is lived as its page (static/qbuy/sale.js) would: the buyer looks at
the public room (GET /api/sales/{id}/room, the same for everyone: nginx keeps it a second) and
joins it (POST) once logged in, keeping its place's key; from the draw (the sale's start) on it
polls the public room every ROOM_POLL seconds until the room's admitted_key reaches its key
(then asks for its place, GET .../room/me, and gets the pass) or the room says sold out, and
asks its place's number once at a random moment PLACE_LOOK after the draw. Admitted, it buys
with the pass. Unlike the page it does not poll the room before the draw (nothing changes then
but the count of those waiting). Its journey (the "done" line) carries the room's clock at its
join (``joined_at``: the arrival order the room saw), its place's key and number, when it was
admitted, and how late it asked its place's number (``look_late``: the generator's own lag).

What the driver needs beyond Locust's stats is appended, one JSON line each, to
``<events-dir>/events-<pid>.jsonl``: every buy answer (a 202's token is on disk before the
buyer goes on, whatever happens to the run), every real failure (5xx, timeout, connection
error), every answer a buyer cannot explain, and one "done" line per buyer saying how its
journey ended. Locust counts those last two kinds as failures; a 409 sold_out, a 403
not_started or a 429 is an answer, not a failure.
"""

import itertools
import json
import os
import random
import time
from datetime import datetime
from pathlib import Path

import gevent
from locust import FastHttpUser, events, task
from locust.exception import StopUser

from loadtests import storm

POLL_INTERVAL = 1.0  # seconds between two looks at a pending order, as a sale page would poll
SETTLE_WAIT = 60.0  # seconds a buyer keeps looking at a pending order before giving up
PRESSES = 20  # buy presses at most, the first included
NOT_STARTED_PAUSE = 0.2  # the countdown said "now": press again at once
RETRY_PAUSE = (0.5, 1.5)  # seconds before pressing again after an error or "too many requests"
MAX_PAUSE = 2.0  # seconds: a Retry-After is waited for, up to this
ROOM_POLL = (1.5, 2.5)  # seconds between two looks at the public room (the page: every 2 s)
PLACE_LOOK = (1.0, 10.0)  # seconds after the draw: when the page asks its place's number, once
TRIES = 5  # tries of each login step and of each look at the order
SMS_READ_EVERY = 0.05  # seconds between two reads of the SMS file, for all buyers of a process
BUYERS_PER_PROCESS = 100_000  # phones of Locust process i: storm.phone(i * this) on

BUY = "/api/sales/[id]/buy"
BUY_ANSWERS = {202, (409, "sold_out"), (409, "already_bought"), (403, "not_started"), 429}
ROOM = "/api/sales/[id]/room"
ROOM_PLACE = "/api/sales/[id]/room/me"


@events.init_command_line_parser.add_listener
def _arguments(parser):
    parser.add_argument("--sale", type=int, env_var="QBUY_SALE", default=0, help="the sale id")
    parser.add_argument(
        "--sms-file", env_var="QBUY_SMS_FILE", default="", help="the SMS file backend's file"
    )
    parser.add_argument(
        "--events-dir", env_var="QBUY_EVENTS_DIR", default="", help="where events-<pid>.jsonl go"
    )
    parser.add_argument(
        "--press-spread",
        type=float,
        env_var="QBUY_PRESS_SPREAD",
        default=1.0,
        help="seconds after the start over which buyers first press buy",
    )


class Shared:
    """What the buyers of one Locust process share: one reader of the SMS file, one events
    file, the numbering of their phones."""

    def __init__(self, environment):
        options = environment.parsed_options
        if not (options.sale and options.sms_file and options.events_dir):
            raise RuntimeError("the storm needs --sale, --sms-file and --events-dir")
        self.sms = storm.SmsFileTail(options.sms_file)
        self.sms_read_at = 0.0
        self.events = Path(options.events_dir) / f"events-{os.getpid()}.jsonl"
        first = environment.runner.worker_index * BUYERS_PER_PROCESS
        self.numbers = itertools.count(first)

    def record(self, kind: str, **event) -> None:
        line = json.dumps({"e": kind, "t": time.time(), **event}) + "\n"
        with open(self.events, "a", encoding="utf-8") as out:  # on disk before the buyer goes on
            out.write(line)

    def code(self, phone: str) -> str | None:
        """The phone's SMS code once the file has it; None after storm.CODES_WAIT seconds."""
        deadline = time.monotonic() + storm.CODES_WAIT
        while phone not in self.sms.codes:
            now = time.monotonic()
            if now > deadline:
                return None
            if now - self.sms_read_at >= SMS_READ_EVERY:  # one read serves every waiting buyer
                self.sms_read_at = now
                self.sms()
            else:
                gevent.sleep(SMS_READ_EVERY)
        return self.sms.codes[phone]


_shared: dict[int, Shared] = {}


def shared(environment) -> Shared:
    pid = os.getpid()  # --processes forks: each process has its own
    if pid not in _shared:
        _shared[pid] = Shared(environment)
    return _shared[pid]


class Buyer(FastHttpUser):
    network_timeout = connection_timeout = storm.TIMEOUT

    @task
    def journey(self):
        self.shared = shared(self.environment)
        self.csrf = ""
        self.trip = {"phone": storm.phone(next(self.shared.numbers)), "outcome": None}
        try:
            self.trip["outcome"] = self._journey()
        finally:  # also when the run is stopped under the buyer (outcome None: unfinished)
            self.shared.record("done", **self.trip)
        raise StopUser()

    def _journey(self) -> str:
        sale, phone = self.environment.parsed_options.sale, self.trip["phone"]
        status, body = self._try("GET", "/api/auth/csrf")
        if status != 200:
            return "stuck:csrf"
        self.csrf = body["csrf_token"]
        if stuck := self._log_in(phone):
            return stuck
        self.csrf = self._cookie("csrftoken")  # Django rotates the token at login

        if self._try("GET", f"/sales/{sale}/", name="/sales/[id]/")[0] != 200:
            return "stuck:sale page"
        status, body = self._try("GET", f"/api/sales/{sale}", name="/api/sales/[id]")
        if status != 200:
            return "stuck:sale"
        self.trip["ready_at"] = time.time()
        if body["state"] == "ended":
            return "ended"
        if body["waiting_room"]:
            pass_, ended = self._wait_in_room(sale)
            if ended:
                return ended
            outcome = self._buy(sale, {"pass": pass_})
        else:
            starts_at = datetime.fromisoformat(body["starts_at"]).timestamp()
            spread = self.environment.parsed_options.press_spread
            gevent.sleep(max(0.0, starts_at - time.time()) + random.uniform(0, spread))
            outcome = self._buy(sale, {})
        if outcome is not None:
            return outcome

        token = self.trip["order"]
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            gevent.sleep(POLL_INTERVAL)
            status, body = self._try("GET", f"/api/orders/{token}", name="/api/orders/[token]")
            if status != 200:
                return "stuck:order"
            if body["status"] != "pending":
                self.trip["settled_at"] = time.time()
                return body["status"]
            if time.monotonic() > deadline:
                return "pending"

    def _buy(self, sale: int, payload: dict) -> str | None:
        """Presses buy until an answer that ends it: None on a 202 (its token in the trip),
        else how the journey ended."""
        for _ in range(PRESSES):
            status, body, headers = self._call(
                "POST", f"/api/sales/{sale}/buy", BUY, json=payload, expect=BUY_ANSWERS
            )
            error = body.get("error") if status != 202 else None
            token = body.get("order") if status == 202 else None
            self.shared.record(
                "buy", phone=self.trip["phone"], status=status, error=error, order=token
            )
            if status == 202:
                self.trip["order"] = token
                return None
            if status == 409:
                return error
            if status == 403 and error == "not_started":
                gevent.sleep(NOT_STARTED_PAUSE)
            elif status in (0, 429) or status >= 500:
                gevent.sleep(_pause(headers))
            else:
                return f"refused:{status}"
        return "gave up pressing"

    def _wait_in_room(self, sale: int) -> tuple[str | None, str | None]:
        """Joins the room and waits for a turn as the sale page does: (the pass, None), or
        (None, how the wait ended: sold_out when the room says so)."""
        room = f"/api/sales/{sale}/room"
        # The page's first look (it also keeps nginx's copy warm: a key nobody asked for in a
        # minute is gone, and a cold key at the draw sends every poll to Django at once).
        if self._try("GET", room, name=ROOM)[0] != 200:
            return None, "stuck:room"
        status, body = self._try("POST", room, name=ROOM, expect={200, 201})
        if status not in (200, 201):
            return None, f"stuck:join {status}"
        self.trip["joined_at"] = datetime.fromisoformat(body["server_time"]).timestamp()
        key = self.trip["place_key"] = body["place_key"]
        draws_at = datetime.fromisoformat(body["draws_at"]).timestamp()
        look_at, looked = draws_at + random.uniform(*PLACE_LOOK), False
        gevent.sleep(max(0.0, draws_at - time.time()) + random.uniform(0, ROOM_POLL[1]))
        while True:
            status, body = self._try("GET", room, name=ROOM)
            if status != 200:
                return None, "stuck:room"
            if body["state"] in ("sold_out", "ended"):
                return None, body["state"] if body["state"] == "sold_out" else "room:ended"
            # The places are the keys' order: the room has let this one in.
            if body.get("admitted_key") is not None and key <= body["admitted_key"]:
                pass_, ended = self._look(room)
                if pass_ or ended:
                    return pass_, ended
            wake = time.time() + random.uniform(*ROOM_POLL)
            if not looked and look_at < wake:  # the place's number, once
                gevent.sleep(max(0.0, look_at - time.time()))
                looked, self.trip["look_late"] = True, round(time.time() - look_at, 3)
                pass_, ended = self._look(room)
                if pass_ or ended:
                    return pass_, ended
            gevent.sleep(max(0.0, wake - time.time()))

    def _look(self, room: str) -> tuple[str | None, str | None]:
        """The buyer's own place (GET room/me): its number, and the pass once in. (None, None)
        while the wait goes on."""
        status, body = self._try("GET", f"{room}/me", name=ROOM_PLACE)
        if status != 200:
            return None, "stuck:place"
        if "place" in body:
            self.trip["place"] = body["place"]
        state = body["state"]
        if state == "admitted":
            self.trip["admitted_at"] = time.time()
            return body["pass"], None
        if state in ("drawing", "waiting"):  # drawing: the room's clock a moment behind
            return None, None
        return None, state if state == "sold_out" else f"room:{state}"

    def _log_in(self, phone: str) -> str | None:
        """An SMS code, then the login with it; None when logged in, else where it got stuck.
        A login whose answer was lost may have used the code up: then, as a person would, the
        buyer asks for another one."""
        code, lost = None, False
        for _ in range(TRIES):
            if code is None:
                if self._try("POST", "/api/auth/code", json={"phone": phone})[0] != 202:
                    return "stuck:code"
                code = self.shared.code(phone)
                if code is None:
                    self.shared.record("unexpected", name="SMS file", status=0, body=phone)
                    return "stuck:sms"
            status, body, headers = self._call(
                "POST",
                "/api/auth/login",
                "/api/auth/login",
                json={"phone": phone, "code": code},
                expect={200, (400, "invalid_code")} if lost else None,
            )
            if status == 200:
                return None
            if status == 0 or status == 429 or status >= 500:
                lost = True
                gevent.sleep(_pause(headers))
            elif lost and body.get("error") == "invalid_code":
                self.shared.sms.codes.pop(phone, None)  # the next code, not this one
                code = None
            else:
                break
        return "stuck:login"

    # -- one request, as Locust and the events file see it ------------------------------------
    def _call(self, method, path, name, *, json=None, expect=None) -> tuple[int, dict, dict]:
        """(status, JSON body or {}, headers). ``expect``: the answers that are not failures,
        statuses or (status, error) pairs; by default 200, and 202 for POST."""
        expect = expect or ({200, 202} if method == "POST" else {200})
        headers = {"X-CSRFToken": self.csrf} if method == "POST" else None
        with self.client.request(
            method, path, name=name, json=json, headers=headers, catch_response=True
        ) as r:
            status = r.status_code or 0
            body = _json_body(r)
            error = body.get("error", "")
            if status == 0 or status >= 500:
                reason = _no_answer(r.error) if status == 0 else error
                r.failure(f"{status} {reason}")
                self.shared.record("fail", name=name, status=status, error=reason)
            elif status in expect or (status, error) in expect:
                r.success()
            else:
                r.failure(f"unexpected {status} {error}")
                text = (r.text or "")[:200]
                self.shared.record("unexpected", name=name, status=status, body=text)
        return status, body, r.headers or {}

    def _try(self, method, path, *, name=None, json=None, expect=None) -> tuple[int, dict]:
        """A step a person repeats after an error page or "too many requests", TRIES times."""
        for _ in range(TRIES):
            status, body, headers = self._call(method, path, name or path, json=json, expect=expect)
            if not (status in (0, 429) or status >= 500):
                break
            gevent.sleep(_pause(headers))
        return status, body

    def _cookie(self, name: str) -> str:
        return next((c.value for c in self.client.cookiejar if c.name == name), "")


def _json_body(r) -> dict:
    try:
        body = r.json()
    except Exception:  # HTML, an empty body, no answer at all
        return {}
    return body if isinstance(body, dict) else {}


def _no_answer(error: Exception | None) -> str:
    """Why there was no answer, without the URL Locust puts in front (one line per kind)."""
    text = str(error)
    return text.rpartition("original=")[2][:200] or type(error).__name__


def _pause(headers: dict) -> float:
    """A person pressing again: after a moment, or after Retry-After if it asks for longer
    (bounded: a person does not wait minutes in front of a sale)."""
    pause = random.uniform(*RETRY_PAUSE)
    try:
        asked = float(headers.get("Retry-After", 0))
    except ValueError:
        asked = 0.0
    return max(pause, min(asked, MAX_PAUSE))
