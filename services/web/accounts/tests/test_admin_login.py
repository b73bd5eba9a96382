"""The admin's password login: validators on staff passwords, and a throttle per address and
per account (accounts.admin_login)."""

import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tools.stack import ROOT

User = get_user_model()
STAFF_PHONE = "+12015550190"
STRONG = "kettle-sale-4-ever-quiet"
WEB = ROOT / "services" / "web"


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(STAFF_PHONE, STRONG)


def admin_login(client, password, username=STAFF_PHONE, **extra):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        **extra,
    )


def form_errors(response) -> list[str]:
    return response.context["form"].non_field_errors()


# --- the throttle ------------------------------------------------------------------------------


def test_right_password_logs_in(client, staff):
    r = admin_login(client, STRONG)

    assert r.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def test_account_is_refused_after_its_failures_even_with_the_right_password(
    client, staff, settings
):
    settings.ADMIN_LOGIN_ACCOUNT_FAILURES = 3
    for n in range(3):  # from three addresses: the account's budget, not an address's
        r = admin_login(client, "wrong", REMOTE_ADDR=f"192.0.2.{n}")
        assert r.status_code == 200
        assert "correct phone and password" in form_errors(r)[0]

    r = admin_login(client, STRONG, REMOTE_ADDR="192.0.2.9")

    assert r.status_code == 200  # the form again, not a login
    (error,) = form_errors(r)
    seconds = int(re.fullmatch(r"Too many failed logins: try again in (\d+) s\.", error)[1])
    assert 0 < seconds <= settings.ADMIN_LOGIN_WINDOW
    assert "_auth_user_id" not in client.session
    # Another account is not locked by this one's failures.
    User.objects.create_superuser("+12015550191", STRONG)
    assert admin_login(client, STRONG, username="+12015550191").status_code == 302


def test_address_is_refused_after_its_failures_across_accounts(client, staff, settings):
    settings.ADMIN_LOGIN_IP_FAILURES = 3
    for n in range(3):
        assert admin_login(client, "wrong", username=f"+1201555{n:04d}").status_code == 200

    r = admin_login(client, STRONG)

    assert "Too many failed logins" in form_errors(r)[0]
    assert "_auth_user_id" not in client.session
    assert admin_login(client, STRONG, REMOTE_ADDR="192.0.2.77").status_code == 302


def test_successes_spend_no_budget(client, staff, settings):
    settings.ADMIN_LOGIN_ACCOUNT_FAILURES = 1
    settings.ADMIN_LOGIN_IP_FAILURES = 1
    for _ in range(3):
        assert admin_login(client, STRONG).status_code == 302
        client.logout()


# --- password validators -----------------------------------------------------------------------


def test_validators_refuse_weak_passwords(db):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for weak in ("1", "password123", "12345678901234", "short-pw"):
        with pytest.raises(ValidationError):
            validate_password(weak, User(phone=STAFF_PHONE))
    validate_password(STRONG, User(phone=STAFF_PHONE))


def manage_env(server_urls, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SUPERUSER_")}
    env.update(server_urls, DJANGO_SETTINGS_MODULE="config.settings.test", **extra)
    return env


@pytest.mark.django_db(transaction=True)
def test_createsuperuser_refuses_a_weak_password_from_the_environment(server_urls):
    def create(password):
        return subprocess.run(
            [sys.executable, "manage.py", "createsuperuser", "--noinput"],
            cwd=WEB,
            env=manage_env(
                server_urls, DJANGO_SUPERUSER_PHONE=STAFF_PHONE, DJANGO_SUPERUSER_PASSWORD=password
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )

    weak = create("1")
    assert weak.returncode != 0
    assert "DJANGO_SUPERUSER_PASSWORD" in weak.stderr
    assert "too short" in weak.stderr
    assert not User.objects.filter(phone=STAFF_PHONE).exists()

    strong = create(STRONG)
    assert strong.returncode == 0, strong.stderr
    assert User.objects.get(phone=STAFF_PHONE).check_password(STRONG)


class Terminal:
    """createsuperuser on a real terminal (getpass reads /dev/tty): a pseudo-terminal."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            os.chdir(WEB)
            os.execve(argv[0], argv, env)  # noqa: S606 - argv is ours, no shell wanted
        self.seen = ""

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"waited for {text!r}; saw {self.seen[-2000:]!r}"
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the child is gone
                    break
        assert text in self.seen, self.seen[-2000:]
        self.seen = self.seen[self.seen.index(text) + len(text) :]

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def wait(self) -> int:
        try:  # drain, so the child never blocks on a full terminal
            while select.select([self.fd], [], [], 1)[0] and os.read(self.fd, 4096):
                pass
        except OSError:
            pass
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


@pytest.mark.django_db(transaction=True)
def test_createsuperuser_at_the_prompt_refuses_a_weak_password(server_urls):
    t = Terminal(
        [sys.executable, "manage.py", "createsuperuser", "--phone", STAFF_PHONE],
        manage_env(server_urls),
    )
    t.expect("Password:")
    t.send("1")
    t.expect("Password (again):")
    t.send("1")
    t.expect("This password is too short")
    t.expect("Bypass password validation and create user anyway? [y/N]:")
    t.send("")  # the default: no
    t.expect("Password:")
    assert not User.objects.filter(phone=STAFF_PHONE).exists()
    t.send(STRONG)
    t.expect("Password (again):")
    t.send(STRONG)
    t.expect("Superuser created successfully.")
    assert t.wait() == 0
    assert User.objects.get(phone=STAFF_PHONE).check_password(STRONG)
