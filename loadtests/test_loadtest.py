"""`make loadtest` in small inside `make test`: the same Locust storm and checks on a real stack,
and proof that its verdict turns red when an invariant breaks or a request really fails."""

import json
import math
import random

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


def test_a_small_room_sale_answers_every_buyer(tmp_path):
    """`make loadtest --waiting-room` in small: every buyer bought or was told "sold out", the
    room let in stock + margin at its rate, and the report has the fairness figure."""
    output = tmp_path / "loadtest.json"
    argv = ["--waiting-room", "--buyers", "150", "--stock", "30", "--output", str(output)]
    code = loadtest.main(argv)
    summary = json.loads(output.read_text())
    print("\n" + loadtest.format_summary(summary))
    assert summary["violations"] == [] and summary["real_failures"] == 0
    assert summary["journeys"] == {"confirmed": 30, "sold_out": 120}
    assert summary["answered"] == 150
    assert summary["invariants"]["orders"] == {"confirmed": 30}
    # Only the admitted buy: the stock and the margin's 3, some of whom find it sold out.
    assert summary["buy_answers"]["202"] == 30
    assert sum(summary["buy_answers"].values()) <= 33
    assert summary["opening"]["buy_at_nginx"]["n"] == sum(summary["buy_answers"].values())
    fair = summary["room"]["fairness"]
    assert 100 <= fair["n"] <= 150 and -1 <= fair["rho"] <= 1
    assert fair["significant_above"] == round(3 / math.sqrt(fair["n"] - 1), 4)
    # The buyers who bought asked for their pass, and so learnt their place's number.
    assert summary["room"]["places"]["told"] >= 30 and summary["room"]["places"]["in_key_order"]
    admitted = summary["room"]["admissions"]
    assert admitted["admitted"] == 33 and admitted["rate"] == 250
    assert code == 0


def _done(joined, keys):
    return [
        {"e": "done", "joined_at": j, "place_key": k} for j, k in zip(joined, keys, strict=True)
    ]


def test_the_fairness_figure_turns_red_when_places_follow_arrival():
    first_come = loadtest.room_figures(_done(range(100), range(100)), [], draw=1000)["fairness"]
    assert first_come["n"] == 100 and first_come["rho"] == 1.0 and not first_come["met"]
    last_come = loadtest.room_figures(_done(range(100), range(100, 0, -1)), [], draw=1000)
    assert last_come["fairness"]["rho"] == -1.0 and not last_come["fairness"]["met"]
    draw = random.Random(22)
    keys = [draw.random() for _ in range(100)]
    drawn = loadtest.room_figures(_done(range(100), keys), [], draw=1000)["fairness"]
    assert abs(drawn["rho"]) < drawn["significant_above"] == 0.3015 and drawn["met"]
    # Who joined after the draw queues in arrival order: not part of the figure.
    late = _done(range(100), keys) + _done(range(1000, 1050), range(1, 51))
    assert loadtest.room_figures(late, [], draw=1000)["fairness"] == drawn
    assert loadtest.spearman([1, 2, 2, 3], [1, 2, 2, 3]) == 1.0  # ties share their rank


def test_place_numbers_out_of_their_keys_order_are_a_violation():
    done = _done(range(3), [0.5, 0.2, 0.9])
    for e, place in zip(done, (2, 1, 3), strict=True):
        e["place"] = place
    assert loadtest.room_figures(done, [], draw=1000)["places"] == {"told": 3, "in_key_order": True}
    done[2]["place"] = 1
    assert not loadtest.room_figures(done, [], draw=1000)["places"]["in_key_order"]


def test_the_admissions_a_second_are_read_from_the_rooms_clock():
    # A room admitting 100 a second from the draw (t = 10), held at 150 by the stock from 11.5.
    samples = [(t / 4, max(0, min(150, int((t / 4 - 10) * 100))), 100) for t in range(36, 60)]
    figures = loadtest.admissions(samples, draw=10.0)
    assert figures["admitted"] == 150 and figures["rate"] == 100
    assert figures["seconds"] == 1.5
    assert figures["mean"] == 100.0 and 99 <= figures["peak"] <= 101
    assert loadtest.admissions([], draw=10.0)["admitted"] == 0
