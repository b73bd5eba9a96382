"""`make loadtest` in small inside `make test`: the same Locust storm and checks on a real stack,
and proof that its verdict turns red when an invariant breaks or a request really fails."""

import json

import psycopg

from loadtests import loadtest


def test_a_small_storm_keeps_every_invariant(tmp_path):
    output = tmp_path / "loadtest.json"
    code = loadtest.main(["--buyers", "300", "--stock", "100", "--output", str(output)])
    summary = json.loads(output.read_text())
    print("\n" + loadtest.format_summary(summary))
    assert summary["violations"] == [] and summary["invariants"]["violations"] == []
    assert summary["invariants"]["confirmed_quantity"] == 100
    assert summary["invariants"]["orders"] == {"confirmed": 100}
    assert summary["journeys"] == {"confirmed": 100, "sold_out": 200}
    assert summary["buy_answers"]["202"] == 100
    assert summary["real_failures"] == 0 and summary["unexpected"] == {}
    assert summary["timings"]["to_last_settled"] is not None
    assert code == 0


def test_the_verdict_turns_red_when_the_sale_is_tampered_with():
    """One 202 left out of the tokens the checker is fed (its order is then a phantom), and a
    confirmed order put back to pending behind the stack's back."""

    def tamper(r, sale, accepted):
        with psycopg.connect(r.postgres.url) as db:
            db.execute(
                "UPDATE orders_order SET status = 'pending' WHERE id = (SELECT min(id)"
                " FROM orders_order WHERE sale_id = %s AND status = 'confirmed')",
                [sale],
            )
        return accepted[1:]

    opts = loadtest.parse_args(["--buyers", "30", "--stock", "10", "--starts-in", "10"])
    summary = loadtest.run(opts, tamper=tamper)
    violations = "\n".join(summary["violations"])
    print("\n" + violations)
    assert summary["real_failures"] == 0  # the storm itself went well...
    assert not summary["ok"]  # ...and the verdict is red all the same
    assert "1 orders were never answered 202" in violations
    assert "1 orders still pending" in violations
    assert "9 items confirmed, expected min(stock 10, buyers 30) = 10" in violations


def _summary(events, *, confirmed=2, exit_code=0):
    report = {"violations": [], "confirmed_quantity": confirmed}
    opts = loadtest.parse_args(["--buyers", "3", "--stock", "2"])
    done = [
        {"e": "done", "outcome": o, "ready_at": 0.0} for o in ("confirmed",) * 2 + ("sold_out",)
    ]
    return loadtest.summarize(
        opts,
        sale={"id": 1, "starts_at": "2030-01-01T00:00:00+00:00"},
        locust={
            "events": events + done,
            "exit_code": exit_code,
            "seconds": 1.0,
            "stats": None,
            "cpu_seconds": 0.5,
            "cpu_warning": False,
        },
        report=report,
        last_settled=None,
        settle_times={},
    )


def test_a_real_failure_or_an_unfinished_journey_is_red():
    assert _summary([])["ok"]
    failed = _summary([{"e": "fail", "name": "/api/auth/code", "status": 503, "error": "x"}])
    assert failed["real_failures"] == 1 and not failed["ok"]
    timeout = _summary([{"e": "fail", "name": "/api/sales/[id]/buy", "status": 0, "error": "t"}])
    assert not timeout["ok"]
    unfinished = _summary([{"e": "done", "outcome": None}])  # a 4th buyer, stopped by the limit
    assert not unfinished["ok"]
    assert not _summary([], confirmed=1)["ok"]
    assert not _summary([], exit_code=2)["ok"]
