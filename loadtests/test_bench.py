"""`make bench` inside `make test`: a short real run of every scenario (1 s each, a few
connections and buyers), and the parsing of wrk's report. No speed is asserted: a run here
only shows that each scenario measures what it says."""

import json
import os

import pytest

from loadtests import bench, cpuload, wrk

SMOKE = [
    "--duration=1",
    "--warmup=1",
    "--connections=8",
    "--sessions=40",
    "--stock=10",
    "--workers=2",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("bench")
    code = bench.main([*SMOKE, f"--results={results}"])
    return code, json.loads((results / "bench.json").read_text()), results


def test_every_scenario_ran_and_got_the_answers_it_expects(smoke):
    code, report, _ = smoke
    assert code == 0, report["problems"]
    runs = {x["key"]: x for x in report["runs"]}
    assert set(runs) == {s.key for s in bench.SCENARIOS}
    for key, run in runs.items():
        expected = {str(status) for status in bench.BY_KEY[key].expected}
        assert run["requests"] > 0, key
        assert run["statuses"] and set(run["statuses"]) <= expected, (key, run["statuses"])
        assert run["latency_ms"]["p99"] > 0, key
    assert runs["list-micro-cache"]["tallies"].get("HIT", 0) > 0
    assert runs["sale-page"]["tallies"].get("HIT", 0) > 0
    assert runs["login-nginx"]["tallies"] == {"MISS": runs["login-nginx"]["requests"]}
    # Every buy run says what an order cost each process, and the total the target reads.
    for key in ("storm-gate", "accepted-gate", "accepted-db-lock"):
        cpu = runs[key]["cpu_ms_per_order"]
        assert set(cpu) == {*bench.CPU_PROCESSES, "total"}, key
        assert cpu["web"] > 0 and cpu["total"] >= cpu["web"], key
    # Postgres is counted: seen where its work is above the kernel's 10 ms tick. The gate's 10 or
    # 40 orders take it ~0.3 ms each, under one tick: 0 there is a right reading.
    assert runs["accepted-db-lock"]["cpu_ms_per_order"]["postgres"] > 0
    assert any(row["target"].startswith("CPU per accepted order") for row in report["ratios"])


@pytest.mark.parametrize("strategy", bench.STRATEGIES)
def test_the_buy_scenarios_keep_every_invariant(smoke, strategy):
    _, report, _ = smoke
    runs = {x["key"]: x for x in report["runs"]}
    storm, accepted = runs[f"storm-{strategy}"], runs[f"accepted-{strategy}"]
    # The storm sells the whole stock and refuses the rest; accepted buys: one per buyer.
    assert storm["statuses"]["202"] == storm["accepted"] == 10
    assert storm["statuses"]["409"] > 0
    assert accepted["statuses"] == {"202": 40} and accepted["accepted"] == 40
    for run in (storm, accepted):
        assert run["invariants"]["ok"], run["invariants"]
        assert run["invariants"]["violations"] == []
        assert run["invariants"]["unanswered"] == 0
        assert run["pending"] == 0 and run["settle_s"] is not None


def test_the_report_files_are_written(smoke):
    _, report, results = smoke
    png = (results / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert report["machine"]["cores"] >= 1 and report["machine"]["postgres"]
    assert report["gunicorn"]["workers"] == 2 and report["gunicorn"]["worker_class"] == "sync"
    assert report["gunicorn"]["max_requests"] == 0
    assert report["settings"]["CACHE_URL"].startswith("redis://")
    targets = {row["target"] for row in report["ratios"]}
    assert "/healthz / bare Django view" in targets
    assert {row["result"] for row in report["ratios"]} <= {"PASS", "MISS", "n/a"}
    assert all(0 <= run["others_cpu"] <= 1 for run in report["runs"])


# -- the CPU others used --------------------------------------------------------------------------
def test_a_reaped_child_s_cpu_counts_as_the_bench_s_own():
    import subprocess
    import sys

    before = cpuload.Snapshot.take()
    # spins until it has used 0.3 s of CPU itself, however busy the machine is
    spin = "import time\nwhile time.process_time() < 0.3: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    after = cpuload.Snapshot.take()
    assert after.ours - before.ours >= 0.29
    assert after.machine >= before.machine
    assert 0 <= cpuload.others_share(before, after) <= 1


def test_others_share_is_what_the_machine_used_beyond_the_bench():
    before = cpuload.Snapshot(at=0.0, machine=100.0, ours=10.0)
    cores = os.cpu_count() or 1
    # over 2 s the machine used 1 core-second more than the bench's processes
    after = cpuload.Snapshot(at=2.0, machine=103.0, ours=12.0)
    assert cpuload.others_share(before, after) == pytest.approx(1 / (2 * cores))
    # CPU the bench used that the machine's counter had not yet seen is no negative share
    assert cpuload.others_share(before, cpuload.Snapshot(at=2.0, machine=100.0, ours=12.0)) == 0


# -- wrk's report, as bench.lua prints it --------------------------------------------------------
def report_line(**overrides) -> str:
    threads = {
        "1": {
            "statuses": {"202": 2, "409": 5},
            "errors": {"409 sold_out": 4, "409 already_bought": 1},
            "tallies": {},
            "tokens": "0b8e6a1c-0000-4000-8000-000000000001 0b8e6a1c-0000-4000-8000-000000000002",
            "answered": 7,
            "first": 1000.5,
            "last": 1002.0,
        },
        "2": {
            "statuses": {"409": 3, "503": 1},
            "errors": {"409 sold_out": 3, "503 unavailable": 1},
            "tallies": {},
            "tokens": "",
            "answered": 4,
            "first": 1000.0,
            "last": 1001.5,
        },
    }
    report = {
        "duration_us": 4_000_000,
        "requests": 11,
        "bytes": 1234,
        "errors": {"connect": 1, "read": 0, "write": 0, "status": 9, "timeout": 2},
        "latency_us": {
            "min": 100,
            "max": 90000,
            "mean": 5000.5,
            "percentiles": {"50": 1500, "90": 8000, "95": 9000, "99": 12000, "99.9": 80000},
        },
        "threads": threads,
        **overrides,
    }
    return "Running 4s test @ http://x\n  ...\nBENCH-JSON " + json.dumps(report) + "\n"


def test_parse_sums_the_threads():
    result = wrk.parse(report_line())
    assert result.requests == 11
    assert result.statuses == {202: 2, 409: 8, 503: 1}
    assert result.errors == {"409 already_bought": 1, "409 sold_out": 7, "503 unavailable": 1}
    assert result.tokens == [
        "0b8e6a1c-0000-4000-8000-000000000001",
        "0b8e6a1c-0000-4000-8000-000000000002",
    ]
    assert result.latency_ms["p50"] == 1.5 and result.latency_ms["p99.9"] == 80.0
    assert result.latency_ms["max"] == 90.0
    assert (result.first, result.last) == (1000.0, 1002.0)


def test_real_failures_are_5xx_timeouts_and_connection_errors_not_409s():
    result = wrk.parse(report_line())
    assert result.server_errors == 1
    assert result.real_failures == 1 + 1 + 2  # a 503, a refused connection, two timeouts


def test_the_rate_is_over_wrks_duration_or_first_request_to_last_answer():
    assert wrk.parse(report_line()).rps == pytest.approx(11 / 4.0)
    # "once": wrk's own duration includes the wait for the harness to stop it
    assert wrk.parse(report_line(), once=True).rps == pytest.approx(11 / 2.0)


def test_a_run_without_any_answer_parses_to_zeros():
    line = report_line(
        requests=0,
        threads={
            "1": {
                "statuses": {},
                "errors": {},
                "tallies": {},
                "tokens": "",
                "answered": 0,
                "first": 0,
                "last": 0,
            }
        },
    )
    result = wrk.parse(line, once=True)
    assert result.requests == 0 and result.rps == 0 and result.statuses == {}
    assert result.first is None and result.last is None


def test_no_report_line_is_an_error():
    with pytest.raises(wrk.WrkError, match="BENCH-JSON"):
        wrk.parse("Running 1s test @ http://x\nunable to connect\n")


def test_the_lua_script_counts_statuses_error_codes_tokens_and_a_header(tmp_path):
    """bench.lua itself, against a tiny server answering like the buy endpoint."""
    import http.server
    import threading

    answers = iter([202, 409, 409, 503] * 10_000)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                status = next(answers)
            if status == 202:
                body = b'{"order": "0b8e6a1c-0000-4000-8000-00000000000a", "status": "pending"}'
            elif status == 409:
                body = b'{"error": "sold_out"}'
            else:
                body = b'{"error": "unavailable", "retry_after": 5}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Seen", self.headers.get("Cookie", "none")[:18])
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("".join(f"sid{n:04d} csrf{n:04d}\n" for n in range(6)))
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/sales/1/buy"
        once = wrk.run(
            url,
            connections=2,
            duration=10,
            mode="once",
            sessions=sessions,
            workdir=tmp_path,
            tally="X-Seen",
        )
        storm = wrk.run(url, connections=2, duration=1, mode="storm", sessions=sessions)
    finally:
        server.shutdown()
    # once: each of the 6 buyers asked exactly once, then wrk was stopped early
    assert once.requests == 6 and sum(once.statuses.values()) == 6
    assert once.tallies == {f"SESSION_ID=sid{n:04d}": 1 for n in range(6)}
    assert once.first is not None and once.last >= once.first
    assert len(once.tokens) == once.statuses.get(202, 0)
    # storm: round and round the buyers, every answer counted by status and error code
    assert storm.requests > 6
    assert sum(storm.statuses.values()) == storm.requests
    assert storm.errors.get("409 sold_out", 0) == storm.statuses.get(409, 0)
    assert storm.errors.get("503 unavailable", 0) == storm.statuses.get(503, 0)
    assert storm.real_failures >= storm.statuses.get(503, 0)
