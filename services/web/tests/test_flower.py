"""Flower's entry script: basic auth is mandatory outside local development."""

import os
import subprocess

import psutil
import pytest
import requests
from port_for import get_port

from tools.stack import SCRIPTS, Process, base_env


def test_flower_refuses_to_start_without_basic_auth():
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings.production")
    env.pop("FLOWER_BASIC_AUTH", None)
    done = subprocess.run(
        [str(SCRIPTS["flower"])], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "FLOWER_BASIC_AUTH" in done.stderr


@pytest.mark.parametrize(
    "basic_auth, message",
    [
        ("admin:change-me", "change-me"),  # .env.example's
        ("ops:s3cret-pass,admin:change-me", "change-me"),
        ("admin", "user:password"),
        ("admin:", "user:password"),
        (":s3cret-pass", "user:password"),
    ],
    ids=["example", "example-among-others", "no-colon", "no-password", "no-user"],
)
def test_flower_refuses_unusable_or_published_credentials(basic_auth, message):
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.production", FLOWER_BASIC_AUTH=basic_auth
    )
    done = subprocess.run(
        [str(SCRIPTS["flower"])], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert message in done.stderr
    assert "s3cret-pass" not in done.stderr


def start_flower(tmp_path, settings: str, basic_auth: str) -> tuple[Process, int]:
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE=settings,
        REDIS_URL=os.environ["REDIS_URL"],
        FLOWER_PORT=str(port),
        FLOWER_BASIC_AUTH=basic_auth,
        FLOWER_ADDRESS="127.0.0.1",
    )
    return Process("flower", env, tmp_path, "Visit me at").start(), port


def test_flower_asks_for_its_password(tmp_path):
    flower, port = start_flower(tmp_path, "config.settings.test", "ops:s3cret-pass")
    try:
        # The entry script execs Flower: same pid. `ps` shows every user the command line.
        running = psutil.Process(flower.proc.pid)
        for proc in [running, *running.children(recursive=True)]:
            assert "s3cret-pass" not in " ".join(proc.cmdline())
        # FLOWER_ADDRESS binds it: nothing listens beyond loopback.
        listening = {c.laddr for c in running.net_connections("inet") if c.status == "LISTEN"}
        assert listening == {("127.0.0.1", port)}
        url = f"http://127.0.0.1:{port}/"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, auth=("ops", "wrong"), timeout=10).status_code == 401
        assert requests.get(url, auth=("ops", "s3cret-pass"), timeout=10).status_code == 200
        # The Kubernetes readiness probe (k8s/base/flower.yaml) has no password.
        assert requests.get(f"{url}healthcheck", timeout=10).text == "OK"
        # The metrics name every task and count them: the shop's order volume (issue 19).
        assert requests.get(f"{url}metrics", timeout=10).status_code == 401
        metrics = requests.get(f"{url}metrics", auth=("ops", "s3cret-pass"), timeout=10)
        assert metrics.status_code == 200 and "flower_events_total" in metrics.text
    finally:
        flower.stop()


def test_flower_takes_empty_variables_for_unset(tmp_path):
    # Locally Flower may run without a login; an empty FLOWER_BASIC_AUTH must not become a
    # login nobody can give (Flower would take "" as the only valid user:password).
    flower, port = start_flower(tmp_path, "config.settings.local", "")
    try:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        flower.stop()
