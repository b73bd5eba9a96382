"""The pages as a person sees them: a real headless Chromium against a live server."""

import shutil
import subprocess
import tempfile

# `make deps` installs Debian's chromium; a missing browser is a failure, not a skip.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def render(url: str) -> str:
    """The DOM after Chromium loaded ``url`` (flags: no network beyond loopback, fresh profile)."""
    with tempfile.TemporaryDirectory(prefix="qbuy-chromium-") as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    return done.stdout


def test_sale_page_renders_in_chromium(live_server, transactional_db, make_sale):
    sale = make_sale(name="Browser Kettle", stock=7)
    dom = render(f"{live_server.url}/sales/{sale.pk}/")
    assert "<h1>Browser Kettle</h1>" in dom
    assert f'id="sale-state" data-sale="{sale.pk}">open<' in dom
    assert "rendered by request " in dom


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
