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


# What a real deployment sets for SMS (k8s/base: the webhook backend, its token in the Secret).
REAL_SMS = {
    "SMS_BACKEND": "webhook",
    "SMS_WEBHOOK_URL": "https://sms.qbuy.test/v1/messages",
    "SMS_WEBHOOK_TOKEN": secrets.token_urlsafe(24),
}
_UNSET = ("SECRET_KEY", "DEBUG", "SMS_ALLOW_INSECURE_BACKEND", *REAL_SMS)


def _run(args, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
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
    done = _run(
        ["-c", "import django; django.setup()"], ALLOWED_HOSTS="example.com", **REAL_SMS, **extra
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SECRET_KEY" in done.stderr


def _setup(**env):
    return _run(
        ["-c", "import django; django.setup()"],
        SECRET_KEY=secrets.token_urlsafe(45),
        ALLOWED_HOSTS="example.com",
        **env,
    )


@pytest.mark.parametrize(
    "backend",
    [None, "console", "file", "locmem", "qbuy_core.sms.ConsoleSmsBackend"],
    ids=["default", "console", "file", "locmem", "dotted-console"],
)
def test_production_refuses_sms_backends_that_leak_codes(backend):
    extra = {} if backend is None else {"SMS_BACKEND": backend}

    done = _setup(SMS_FILE_PATH="never-written.jsonl", **extra)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "SMS_ALLOW_INSECURE_BACKEND" in done.stderr


@pytest.mark.parametrize("backend", ["console", "file"])
def test_a_laptop_may_opt_out_explicitly(backend):
    done = _setup(
        SMS_BACKEND=backend, SMS_FILE_PATH="never-written.jsonl", SMS_ALLOW_INSECURE_BACKEND="true"
    )

    assert done.returncode == 0, done.stderr


def test_the_env_example_opts_out_and_kubernetes_does_not():
    root = WEB.parents[1]
    assert "SMS_ALLOW_INSECURE_BACKEND=true" in (root / ".env.example").read_text()
    assert "SMS_ALLOW_INSECURE_BACKEND" not in (root / "k8s/base/configmap.yaml").read_text()


@pytest.mark.parametrize(
    "url, token, message",
    [
        ("https://sms-gateway.example.invalid/REPLACE-ME", "t0k3n-0123456789", "SMS_WEBHOOK_URL"),
        ("https://sms.qbuy.test/REPLACE-ME", "t0k3n-0123456789", "SMS_WEBHOOK_URL"),
        ("http://sms.qbuy.test/v1/messages", "t0k3n-0123456789", "SMS_WEBHOOK_URL"),
        ("", "t0k3n-0123456789", "SMS_WEBHOOK_URL"),
        ("https://sms.qbuy.test/v1/messages", "", "SMS_WEBHOOK_TOKEN"),
        ("https://sms.qbuy.test/v1/messages", "replace-me", "SMS_WEBHOOK_TOKEN"),
    ],
    ids=["configmap-placeholder", "replace-me", "plain-http", "no-url", "no-token", "example"],
)
def test_production_refuses_a_placeholder_sms_gateway(url, token, message):
    done = _setup(SMS_BACKEND="webhook", SMS_WEBHOOK_URL=url, SMS_WEBHOOK_TOKEN=token)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert message in done.stderr


def test_production_accepts_a_real_sms_gateway():
    assert _setup(**REAL_SMS).returncode == 0


def test_production_passes_the_deploy_check():
    done = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SECRET_KEY=secrets.token_urlsafe(45)[:60],
        ALLOWED_HOSTS="example.com",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        **REAL_SMS,
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
        **REAL_SMS,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
