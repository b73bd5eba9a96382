"""The pages as a person sees them: a real headless Chromium against a live server."""

import re
import subprocess
import tempfile
from pathlib import Path

import requests
from django.conf import settings

from accounts.models import User

from .browser import session_key
from .chromium import CHROMIUM, FLAGS, Visit, visit


def render(url: str) -> str:
    """The DOM after Chromium loaded ``url`` (flags: no network beyond loopback, fresh profile)."""
    with tempfile.TemporaryDirectory(prefix="qbuy-chromium-") as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    return done.stdout


def test_sale_page_renders_in_chromium(live_server, transactional_db, make_sale):
    sale = make_sale(name="Browser Kettle", stock=7)
    dom = render(f"{live_server.url}/sales/{sale.pk}/")
    assert '<h1 id="sale-name">Browser Kettle</h1>' in dom
    assert '<section id="sale" ' in dom and f'data-sale="{sale.pk}"' in dom
    assert re.search(r'id="sale-status"[^>]*data-state="open"[^>]*>On sale now<', dom)
    assert '<button id="buy-button" type="button"' in dom
    assert "rendered by request" not in dom


def test_sale_list_renders_pagination_in_chromium(live_server, transactional_db, make_sale):
    for n in range(3):
        make_sale(name=f"Listed {n}")
    dom = render(f"{live_server.url}/sales/")
    assert all(f"Listed {n}" in dom for n in range(3))
    assert 'data-page="1"' in dom
    assert "page 1 of 1" in dom


def test_login_form_renders_in_chromium(live_server, transactional_db):
    dom = render(f"{live_server.url}/login/")
    assert 'name="phone"' in dom
    assert 'name="csrfmiddlewaretoken"' in dom


# --- Content-Security-Policy -------------------------------------------------------------------

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# What the policy refuses in markup: inline <style>, style="", inline <script>, on*="" handlers.
INLINE = re.compile(r"<style|\sstyle=|<script(?![^>]*\bsrc=)|\son[a-z]+=", re.IGNORECASE)


def session_cookie(user) -> dict:
    return {settings.SESSION_COOKIE_NAME: session_key(user)}


def assert_csp_holds(url: str, cookies: dict | None = None) -> Visit:
    response = requests.get(url, cookies=cookies, timeout=10, allow_redirects=False)
    assert response.status_code == 200, (url, response.status_code)
    policy = response.headers.get("Content-Security-Policy")
    assert policy, f"{url}: no Content-Security-Policy header"
    assert "unsafe-inline" not in policy
    page = visit(url, cookies=cookies, evaluate=[MAX_WIDTH])
    assert page.csp_violations == [], f"{url}:\n" + "\n".join(page.csp_violations)
    return page


MAX_WIDTH = "getComputedStyle(document.body).maxWidth"


def test_our_pages_satisfy_the_csp_in_chromium(live_server, transactional_db, make_sale):
    sale = make_sale(name="Strict Kettle")
    buyer = User.objects.create_user("+12015550123")
    pages = {
        "/sales/": None,
        f"/sales/{sale.pk}/": None,
        "/login/": None,
        "/orders/": session_cookie(buyer),
        "/account/": session_cookie(buyer),
    }
    for path, cookies in pages.items():
        page = assert_csp_holds(live_server.url + path, cookies)
        # site.css applied (body { max-width: 48rem }): the stylesheet, not an inline <style>.
        assert page.values[MAX_WIDTH] == "768px", path
    assert "+12015550123" in page.html  # the account page, logged in


COUNTDOWN = "document.getElementById('countdown').textContent"
BUY_DISABLED = "document.getElementById('buy-button').disabled"
LIST_TIMES = "[...document.querySelectorAll('time[data-verb]')].map(t => t.textContent)"


def test_the_pages_scripts_run_under_the_csp_in_chromium(live_server, transactional_db, make_sale):
    """site.js and sale.js load as 'self' scripts and run: the countdown and the list's times
    are rewritten in the browser, and nothing is refused by the policy."""
    sale = make_sale(name="Scripted Kettle", stock=3, starts_in=65)
    make_sale(name="Live Kettle", starts_in=-60, duration=1200)

    page = visit(f"{live_server.url}/sales/{sale.pk}/", evaluate=[COUNTDOWN, BUY_DISABLED])
    assert page.csp_violations == [], page.console
    assert re.fullmatch(r"Opens in 1:0[0-5]", page.values[COUNTDOWN]), page.values
    assert page.values[BUY_DISABLED] is True

    listed = visit(f"{live_server.url}/sales/", evaluate=[LIST_TIMES])
    assert listed.csp_violations == [], listed.console
    ends, opens = listed.values[LIST_TIMES]  # the live sale first
    assert ends in ("ends in 19 min", "ends in 18 min"), ends
    assert re.fullmatch(r"opens in ([12] min|under a minute)", opens), opens


def test_the_admin_satisfies_the_csp_in_chromium(live_server, transactional_db, make_sale):
    sale = make_sale(name="Admin Kettle")
    admin = User.objects.create_superuser("+12015550199", "a-long-enough-admin-password")
    cookies = session_cookie(admin)
    assert_csp_holds(f"{live_server.url}/admin/login/")
    for path in (
        "/admin/",
        "/admin/accounts/user/",
        f"/admin/accounts/user/{admin.pk}/change/",
        "/admin/sales/sale/",
        f"/admin/sales/sale/{sale.pk}/change/",
        "/admin/sales/sale/add/",
    ):
        page = assert_csp_holds(live_server.url + path, cookies)
        assert 'id="user-tools"' in page.html, path  # logged in, not the login form


def test_a_violation_is_seen(live_server, transactional_db, settings):
    """The check above can fail: an inline style under the same policy is reported."""
    settings.ROOT_URLCONF = "tests.urls_inline_style"
    page = visit(f"{live_server.url}/inline-style/")
    assert any("style-src" in line for line in page.csp_violations), page.console


def test_templates_have_no_inline_script_or_style():
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)!r}"
        for path in TEMPLATES.rglob("*.html")
        for match in INLINE.finditer(path.read_text())
    ]
    assert offenders == []
