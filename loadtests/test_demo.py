"""`make demo` in small, on a native stack behind nginx (loadtests.rig) in place of `make up`'s:
the same sale, Locust buyers and report; the container side (web and nginx recreated, the SMS
codes read back with docker exec) only runs against `make up`."""

from loadtests import demo
from loadtests.rig import Rig, deployed_settings


def test_the_demo_sells_out_to_its_buyers_and_keeps_every_invariant(tmp_path):
    opts = demo.parse_args(
        ["--buyers", "20", "--stock", "5", "--starts-in", "10", "--time-after-start", "40"]
    )
    with Rig(tmp_path, settings=deployed_settings(), nginx=True) as r:
        summary = demo.run(r, demo.Target(r.url, r.dir), opts)
    print("\n" + demo.report(summary))
    assert summary["ok"]
    assert summary["journeys"] == {"confirmed": 5, "sold_out": 15}
    assert summary["buy_answers"]["202"] == 5
    assert summary["invariants"]["confirmed_quantity"] == 5
    assert summary["invariants"]["violations"] == []


def test_the_demo_settings_replace_the_env_files_own():
    text = (
        "SECRET_KEY=x\nSMS_BACKEND=console\n# NGINX_CODE_RATE=6r/m\nexport SMS_IP_HOURLY_LIMIT=20\n"
    )
    lines = demo.with_settings(text, demo.DEMO_SETTINGS).splitlines()
    assert lines[:2] == ["SECRET_KEY=x", "# NGINX_CODE_RATE=6r/m"]
    assert lines.count("SMS_BACKEND=file") == 1 and "SMS_BACKEND=console" not in lines
    assert sum(line.startswith(("SMS_IP_HOURLY_LIMIT=", "export SMS_IP")) for line in lines) == 1
