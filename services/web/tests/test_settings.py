"""Production settings: checked in a subprocess, since settings load once per process."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[1]  # services/web
# The published placeholder that `make up` copies into .env: read from the file, so the test
# follows it if it changes.
EXAMPLE_SECRET_KEY = next(
    line.split("=", 1)[1]
    for line in (WEB.parents[1] / ".env.example").read_text().splitlines()
    if line.startswith("SECRET_KEY=")
)


def _run(args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.production", **env_overrides)
    return subprocess.run(
        [sys.executable, *args],
        cwd=WEB,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "secret_key",
    [
        None,
        "",
        "short",
        "django-insecure-" + "x" * 50,
        "dev-only-not-secret-8c1f3e0d6a2b4f7e9d5c" + "x" * 20,
        EXAMPLE_SECRET_KEY,
        "CHANGE-ME-" + secrets.token_urlsafe(45),
    ],
    ids=["unset", "empty", "short", "django-insecure", "dev-only", "env-example", "change-me"],
)
def test_production_refuses_a_weak_secret_key(secret_key):
    extra = {} if secret_key is None else {"SECRET_KEY": secret_key}
    done = _run(["-c", "import django; django.setup()"], ALLOWED_HOSTS="example.com", **extra)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SECRET_KEY" in done.stderr


def test_production_passes_the_deploy_check():
    done = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SECRET_KEY=secrets.token_urlsafe(45)[:60],
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_forces_debug_off():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    done = _run(
        ["-c", code],
        SECRET_KEY=secrets.token_urlsafe(45),
        ALLOWED_HOSTS="example.com",
        DEBUG="true",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
