"""deploy/nginx.conf on its own, in front of a small upstream that counts what reaches it: what
the edge caches, what it passes through, that it never holds requests back (issues 19, 20) and
never lets /metrics through (issue 21).

No Django here: the upstream answers like the app would (a page, a login page that sets a
cookie and is never cached) and records every request, so each test sees exactly what nginx
sent on. nginx is rendered by the script compose and `make local` use (loadtests.rig.Nginx).
"""

import http.client
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from port_for import get_port

from loadtests.rig import Nginx
from tools.stack import base_env

SLOW = 0.3  # seconds the upstream takes for an uncacheable page
CLIENTS = 16


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.seen: list[tuple[str, str | None]] = []  # (path, Cookie) of every request


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        with server.lock:
            cookies = self.headers.get_all("Cookie")
            server.seen.append((self.path, "; ".join(cookies) if cookies else None))
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            if self.path.startswith("/login/"):
                # As Django's login page: a CSRF cookie, never cached, and not fast.
                time.sleep(SLOW)
                headers = {"Set-Cookie": "csrftoken=abc; Path=/", "Cache-Control": "private"}
            else:
                headers = {}
            body = f"page {self.path}".encode()
            self.send_response(200)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def status_port() -> int:
    """nginx's internal stub_status listener (NGINX_STATUS_LISTEN)."""
    return get_port(None)


@pytest.fixture(scope="module")
def edge(status_port):
    upstream = Upstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # Not pytest's tmp_path: nginx's workers (nobody) must reach its cache folder.
    workdir = Path(tempfile.mkdtemp(prefix="qbuy-nginx-edge-"))
    env = base_env(NGINX_STATUS_LISTEN=f"127.0.0.1:{status_port}")
    nginx = Nginx(workdir, env, web_port=upstream.server_address[1]).start()
    yield nginx, upstream
    nginx.stop()
    upstream.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)


def get(
    nginx: Nginx, path: str, cookies: list[str] = (), *, port: int | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port or nginx.port, timeout=30)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", "localhost")
    for cookie in cookies:  # each its own Cookie header
        conn.putheader("Cookie", cookie)
    conn.endheaders()
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def test_an_uncacheable_page_is_passed_through_at_once_to_concurrent_clients(edge):
    nginx, upstream = edge
    with upstream.lock:
        upstream.most_in_flight = 0

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda _: get(nginx, "/login/"), range(CLIENTS)))

    assert [a.status for a in answers] == [200] * CLIENTS
    assert all(a.getheader("X-Micro-Cache") == "MISS" for a in answers)
    # Every client's request reached the app together: none waited for another's answer (a
    # cache lock made them queue behind the one in flight, then poll every 500 ms).
    assert upstream.most_in_flight >= CLIENTS * 3 // 4, upstream.most_in_flight


SESSION = "SESSION_ID=realsession"
TRICKS = {
    "plain": [SESSION],
    "a decoy first": ["SESSION_ID=0; " + SESSION],
    "after a tab": ["a=1;\t" + SESSION],
    "other case": ["session_id=realsession"],
    "no space": ["a=1;SESSION_ID=realsession"],
    "a second Cookie header": ["a=1", SESSION],
}


@pytest.mark.parametrize("cookies", TRICKS.values(), ids=TRICKS.keys())
def test_any_session_cookie_bypasses_the_micro_cache_and_never_fills_it(edge, cookies):
    nginx, upstream = edge
    path = f"/sales/1/?case={len(upstream.seen)}"

    for _ in range(2):
        answer = get(nginx, path, cookies)
        assert answer.status == 200
        assert answer.getheader("X-Micro-Cache") == "BYPASS", cookies
    # What the app got carried the session; then an anonymous visitor is not served that answer.
    assert [c for p, c in upstream.seen if p == path] == ["; ".join(cookies)] * 2
    assert get(nginx, path).getheader("X-Micro-Cache") == "MISS"
    assert get(nginx, path).getheader("X-Micro-Cache") == "HIT"


# Every spelling of /metrics a client might try, as sent on the wire: nginx matches locations on
# the path decoded and normalised (slashes merged, dot segments resolved), but a rule written for
# the literal path alone would pass most of these on to the app.
METRICS_PATHS = [
    "/metrics",
    "/metrics/",
    "/metrics?x",
    "/metrics/?x=1",
    "/METRICS",
    "/Metrics/x",
    "//metrics",
    "/./metrics",
    "/sales/../metrics",
    "/static/../metrics",
    "/%6Detrics",
    "/metrics%2F",
]


@pytest.mark.parametrize("path", METRICS_PATHS)
def test_metrics_never_reaches_the_app(edge, path):
    nginx, upstream = edge
    seen = len(upstream.seen)

    answer = get(nginx, path)

    assert answer.status == 404, path
    assert upstream.seen[seen:] == [], path


def test_only_metrics_itself_is_refused(edge):
    """The rule is no wider than /metrics and what is below it: the app still gets the rest."""
    nginx, upstream = edge
    for path in ("/metricsx", "/sales/metrics", "/static/metrics"):
        seen = len(upstream.seen)
        assert get(nginx, path).status == 200, path
        assert [p for p, _ in upstream.seen[seen:]] == [path]


def test_stub_status_is_on_the_internal_listener_only(edge, status_port):
    nginx, upstream = edge
    status = get(nginx, "/stub_status", port=status_port)
    assert status.status == 200
    assert status.body.startswith(b"Active connections:")
    assert get(nginx, "/", port=status_port).status == 404
    # On the public port it is just another path, the app's to answer.
    seen = len(upstream.seen)
    assert get(nginx, "/stub_status").body == b"page /stub_status"
    assert [p for p, _ in upstream.seen[seen:]] == ["/stub_status"]


def test_the_waiting_rooms_public_answer_is_shared_by_every_session(edge):
    """Thousands of buyers, each with a session, poll their sale's room: the edge keeps its
    answer a second for all of them (the app reads no session for it)."""
    nginx, upstream = edge
    path = f"/api/sales/{len(upstream.seen) + 1000}/room"
    seen = len(upstream.seen)

    answers = [get(nginx, path, [f"SESSION_ID=buyer{n}"]) for n in range(5)]

    assert [a.getheader("X-Micro-Cache") for a in answers] == ["MISS"] + ["HIT"] * 4
    assert [p for p, _ in upstream.seen[seen:]] == [path]


def test_a_buyers_own_place_in_the_room_is_never_kept(edge):
    nginx, upstream = edge
    path = "/api/sales/7/room/me"
    seen = len(upstream.seen)

    for n in range(2):
        get(nginx, path, [f"SESSION_ID=buyer{n}"])

    assert [c for p, c in upstream.seen[seen:]] == ["SESSION_ID=buyer0", "SESSION_ID=buyer1"]


def test_an_expired_waiting_room_answer_is_refreshed_not_served_stale(edge):
    """A lone buyer polling every 2 s gets a fresh answer, not the one of its previous poll
    (nginx counts the second of validity in whole seconds: expired within 2 s)."""
    nginx, upstream = edge
    path = f"/api/sales/{len(upstream.seen) + 2000}/room"
    seen = len(upstream.seen)

    get(nginx, path, ["SESSION_ID=a"])
    time.sleep(2.1)
    answer = get(nginx, path, ["SESSION_ID=a"])

    assert answer.getheader("X-Micro-Cache") == "EXPIRED"
    assert [p for p, _ in upstream.seen[seen:]] == [path, path]
