"""Buyers in a real browser, for the buy flow tests: Playwright for Python driving Debian's
Chromium (the one `make deps` installs; Playwright downloads no browser of its own) against a
live stack, a screenshot of every step in artifacts/browser/ (ignored by git).

Each Buyer is one person: a browser context of their own (their own cookies), one page, their
phone, and a record of every text the page showed them (RECORD_TEXTS), so a test can say what a
buyer never saw, not only what they see at the end.
"""

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, Page, expect, sync_playwright

from loadtests.rig import Rig, deployed_settings
from loadtests.storm import parse_codes
from tools.stack import ROOT

from .chromium import CHROMIUM

ARTIFACTS = ROOT / "artifacts/browser"
VIEWPORT = {"width": 1280, "height": 800}
PHONE_WIDTH = {"width": 390, "height": 844}
WAIT_MS = 15_000  # every wait that does not say otherwise: a slow CI machine, not a hang
CODE_WAIT = 10  # seconds for the SMS file backend to write a code
expect.set_options(timeout=WAIT_MS)  # expect()'s own default is 5 s (a context's is for actions)

# Each text the page's body showed, in order (a MutationObserver from the document's start):
# what a person could have read at any moment, not only at the end.
RECORD_TEXTS = """
(() => {
  const seen = (window.__qbuySeen = []);
  window.__qbuyBuyEnabled = false; // was the buy button ever enabled on this page?
  const note = () => {
    const text = document.body && document.body.innerText;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
    const button = document.getElementById("buy-button");
    if (button && !button.disabled) window.__qbuyBuyEnabled = true;
  };
  new MutationObserver(note).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
})();
"""

# What a person must never read on a page: raw JSON, an API error object, ISO timestamps, the
# states' tokens, JavaScript's placeholders, the old debug footer.
NOT_IN_WORDS = re.compile(
    r'\{"|"error"|\d{4}-\d\d-\d\dT\d\d:\d\d|\bsold_out\b|\bundefined\b|\bNaN\b|\bnull\b'
    r"|\[object |rendered by request",
)


@contextmanager
def chromium():
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root in containers, where Chromium's sandbox cannot.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def session_key(user) -> str:
    """A session of ``user`` made by Django's test login (the password login's backend, as the
    admin's form gives). Before chromium(): Django refuses its ORM inside Playwright's loop."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@contextmanager
def logged_in_page(browser: Browser, base_url: str, session: str) -> Iterator[Page]:
    """A page of a fresh context carrying the session cookie, closed afterwards."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url}]
        )
        yield context.new_page()
    finally:
        context.close()


class Shots:
    """Numbered full-page screenshots of one test in ARTIFACTS/<name>/ (emptied first)."""

    def __init__(self, name: str):
        self.dir = ARTIFACTS / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.dir / f"{self.count:02d}-{name}.png"
        page.screenshot(path=path, full_page=True)
        return path


def sms_codes(sms_file: Path, phone: str) -> list[str]:
    """Every code the SMS file backend sent to ``phone``, oldest first."""
    if not sms_file.exists():
        return []
    return [
        code
        for line in sms_file.read_text().splitlines()
        for sent, code in parse_codes(line).items()
        if sent == phone
    ]


def wait_for(what: str, probe: Callable, timeout: float):
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)
    return found


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Buyer:
    """One person with a browser of their own. ``clock_skew``: seconds their computer's clock
    is off (the page must go by the server's clock)."""

    def __init__(
        self,
        browser: Browser,
        *,
        name: str,
        url: str,
        phone: str,
        sms_file: Path,
        shots: Shots,
        clock_skew: float = 0,
    ):
        self.name, self.url, self.phone, self.sms_file, self.shots = (
            name,
            url,
            phone,
            sms_file,
            shots,
        )
        self.context = browser.new_context(viewport=VIEWPORT, base_url=url)
        self.context.set_default_timeout(WAIT_MS)
        self.context.add_init_script(RECORD_TEXTS)
        if clock_skew:
            # Date (and the timers) shifted; time keeps flowing at its real pace.
            self.context.clock.install(time=time.time() + clock_skew)
        self.page = self.context.new_page()

    def __enter__(self) -> "Buyer":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is not None:  # what the buyer had on screen when the test failed
                self.shots.take(self.page, f"{self.name}-failed")
        finally:
            self.context.close()

    def step(self, name: str) -> Path:
        """The screenshot of a step (taken before its checks: a failure leaves the evidence),
        then: the page reads in words."""
        path = self.shots.take(self.page, f"{self.name}-{name}")
        text = self.page.locator("body").inner_text()
        raw = NOT_IN_WORDS.search(text)
        assert raw is None, f"{path.name}: the page shows {raw.group()!r}:\n{text}"
        return path

    def log_in(self) -> None:
        """From the login page the buyer is on: the phone, the code from the SMS, submit."""
        page = self.page
        expect(page).to_have_url(re.compile(r"/login/"))
        sent_before = len(sms_codes(self.sms_file, self.phone))
        phone_box = page.get_by_label(re.compile(r"phone", re.IGNORECASE))
        phone_box.fill(self.phone)
        self.step("login-phone")
        page.locator("form", has=phone_box).locator("button[type=submit]").click()
        code_box = page.get_by_label(re.compile(r"^\s*code", re.IGNORECASE))
        expect(code_box).to_be_visible()
        code = wait_for(
            f"an SMS code for {self.phone} in {self.sms_file}",
            lambda: sms_codes(self.sms_file, self.phone)[sent_before:],
            CODE_WAIT,
        )[-1]
        code_box.fill(code)
        self.step("login-code")
        page.locator("form", has=code_box).locator("button[type=submit]").click()

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.context.cookies(self.url)}

    def seen(self) -> list[str]:
        """Every text the current page's body showed since it loaded."""
        return self.page.evaluate("window.__qbuySeen")

    def buy_was_enabled(self) -> bool:
        """Whether the current page's buy button was enabled at any moment since it loaded."""
        return self.page.evaluate("window.__qbuyBuyEnabled")

    def focus_order(self, target: str, limit: int = 40) -> list[str]:
        """Press Tab until the element ``target`` (a CSS selector) has the focus; the focused
        elements on the way, described as a person would name them."""
        order = []
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            order.append(
                self.page.evaluate(
                    """(target) => {
                      const el = document.activeElement;
                      const name = (el.innerText || el.value || el.getAttribute('aria-label')
                                    || '').trim().slice(0, 40);
                      return (el.matches(target) ? '>' : '') + el.tagName.toLowerCase()
                             + (el.id ? '#' + el.id : '') + ' ' + JSON.stringify(name);
                    }""",
                    target,
                )
            )
            if order[-1].startswith(">"):
                return order
        raise AssertionError(f"{target} never had the focus after {limit} Tabs: {order}")


@contextmanager
def live_stack(request, *, prefix: str, shots: Path) -> Iterator[Rig]:
    """The stack as deployed behind nginx with a Chromium (``rig.browser``) for a test
    module; where the screenshots went is printed at the end."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        Rig(Path(tmp), settings=deployed_settings(), nginx=True, concurrency=4) as rig,
        chromium() as browser,
    ):
        rig.browser = browser
        try:
            yield rig
        finally:
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print(f"\nbrowser screenshots: {shots}/")
