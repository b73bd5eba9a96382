"""The admin's live sale view (issue 21): who may see it, its figures, and the page in Chromium
while a sale runs."""

import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from accounts.backends import SMS_CODE_BACKEND
from accounts.models import User
from orders import live, services
from orders.models import Order
from sales.models import Sale

from .browser import NOT_IN_WORDS, Shots, chromium, logged_in_page, session_key
from .wsgi import call, code_session, environ

PASSWORD = "a-long-enough-admin-password"


def urls(sale) -> tuple[str, str]:
    return (
        reverse("admin:sales_sale_live", args=[sale.pk]),
        reverse("admin:sales_sale_live_data", args=[sale.pk]),
    )


def staff(phone: str, *perms: str) -> User:
    user = User.objects.create_user(phone, PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def password_client(user) -> Client:
    """A session of the admin's password login (Django's ModelBackend)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def until_whole(second: int) -> None:
    while live.last_whole_second(time.time()) < second:
        time.sleep(0.05)


def test_staff_with_the_view_permission_sees_the_page_and_its_figures(make_sale):
    sale = make_sale(name="Watched Kettle", stock=8)
    clerk = password_client(staff("+12015550301", "view_sale"))
    now = int(time.time())
    for outcome in ["accepted", "sold_out", "sold_out"]:
        live.record(sale.pk, outcome)
    live.flush()
    until_whole(now)
    page, data = urls(sale)

    response = clerk.get(data)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]  # the admin's views are never cached
    figures = response.json()
    assert (figures["sale"], figures["state"], figures["stock"]) == (sale.pk, "open", 8)
    assert {o: sum(v) for o, v in figures["answers"].items()} == {"accepted": 1, "sold_out": 2}
    assert figures["orders"] == {"pending": 0, "confirmed": 0, "failed": 0}

    html = clerk.get(page).content.decode()
    assert "<h1>Live: Watched Kettle</h1>" in html
    for heading in ("Buy answers per second, by outcome", "Stock left", "Pending orders"):
        assert f">{heading}</h2>" in html
    assert f'data-url="{data}"' in html
    assert html.count('aria-live="polite"') == 4
    assert "qbuy/live.js" in html and "qbuy/live.css" in html


def test_the_change_page_links_to_the_live_view(make_sale):
    sale = make_sale()
    admin = password_client(User.objects.create_superuser("+12015550302", PASSWORD))
    html = admin.get(reverse("admin:sales_sale_change", args=[sale.pk])).content.decode()
    assert f'<a href="{urls(sale)[0]}">Live</a>' in html


def sms_code_session(user) -> Client:
    """A session made by the SMS code login, as accounts.services makes it."""
    client = Client()
    client.force_login(user, backend=SMS_CODE_BACKEND)
    return client


REFUSED = {
    "anonymous": lambda: Client(),
    "a buyer": lambda: sms_code_session(User.objects.create_user("+12015550303")),
    # A superuser's SMS code session never opens the admin (accounts/admin_site.py).
    "an SMS code session": lambda: sms_code_session(
        User.objects.create_superuser("+12015550304", PASSWORD)
    ),
    "staff, password session": lambda: password_client(
        User.objects.create_user("+12015550305", PASSWORD, is_staff=True)
    ),
}


@pytest.mark.parametrize("who", REFUSED)
def test_the_live_view_is_refused(make_sale, who):
    sale = make_sale()
    client = REFUSED[who]()
    for url in urls(sale):
        response = client.get(url)
        if who.startswith("staff"):  # in the admin, without the sale's view permission
            assert response.status_code == 403, url
        else:  # sent to the admin's password login
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login")), url
        assert b"stock_left" not in response.content


def test_an_unknown_sale_is_404(db):
    clerk = password_client(staff("+12015550306", "view_sale"))
    assert clerk.get(reverse("admin:sales_sale_live_data", args=[999_999])).status_code == 404


# --- A real buy, through the whole WSGI stack the web serves (config/wsgi.py) ------------------


def wsgi_buy(application, sale, user) -> int:
    status, _, _ = call(application, environ({"sale": sale, **code_session(user)}))
    return int(status[:3])


@pytest.mark.django_db(transaction=True)  # Django's WSGI handler closes its connections
def test_real_buys_and_their_settling_show_in_the_live_figures(make_sale):
    from config.wsgi import application  # here: importing it sets Django up, at collection

    sale = make_sale(stock=1)
    buyers = [User.objects.create_user(f"+1201555031{n}") for n in range(3)]
    now = int(time.time())

    answers = [wsgi_buy(application, sale, user) for user in buyers]
    services.orders_settle(sale_id=sale.pk)
    live.flush()
    until_whole(now + 1)  # the settle may have happened in the next second

    assert answers == [202, 409, 409]
    clerk = password_client(staff("+12015550319", "view_sale"))
    figures = clerk.get(urls(sale)[1]).json()
    assert {o: sum(v) for o, v in figures["answers"].items()} == {"accepted": 1, "sold_out": 2}
    assert sum(figures["settle"]["orders"]) == 1
    assert figures["orders"] == {"pending": 0, "confirmed": 1, "failed": 0}
    assert figures["stock_left"] == 0


# --- The page in Chromium ----------------------------------------------------------------------


def storm(sale_id: int, buyer_ids: list[int], seconds: float) -> None:
    """A sale's opening, in a thread of its own (Django's ORM refuses Playwright's loop): real
    reservations until the stock is gone, the crowd's other answers recorded, settling every
    second. Buy answers are counted where the web counts them, so here by hand."""
    try:
        ticks = int(seconds / 0.2)
        for tick in range(ticks):
            for buyer_id in buyer_ids[2 * tick : 2 * tick + 2]:
                try:
                    services.order_reserve(sale_id=sale_id, buyer_id=buyer_id)
                    live.record(sale_id, "accepted")
                except services.BuyRefused as refused:
                    live.record(sale_id, refused.outcome)
            for outcome, n in (("sold_out", 4 * tick), ("already_bought", tick // 4)):
                for _ in range(n):
                    live.record(sale_id, outcome)
            if tick % 3 == 0:
                live.record(sale_id, "rate_limited")
            if tick % 5 == 4:
                services.orders_settle(sale_id=sale_id)
            time.sleep(0.2)
        services.orders_settle(sale_id=sale_id)
    finally:
        connection.close()


def in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def end_sale(sale_id: int) -> None:
    try:
        Sale.objects.filter(pk=sale_id).update(ends_at=timezone.now())
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_live_page_follows_a_running_sale_in_chromium(live_server, make_sale):
    """A staff member watches a sale's opening: the figures change as buys come in, in the
    charts and in words, then the page says the sale has ended and stops. Screenshots in
    artifacts/browser/live-sale/ are for a person to look at."""
    sale = make_sale(name="Flash Kettle", stock=30)
    buyer_ids = [User.objects.create_user(f"+1303556{n:04d}").pk for n in range(60)]
    session = session_key(staff("+12015550320", "view_sale"))
    shots = Shots("live-sale")
    problems: list[str] = []
    with chromium() as browser, logged_in_page(browser, live_server.url, session) as page:
        # A refused script or style (the CSP), a script error, a request of the page's refused.
        # Not the console's "Failed to load resource": Chromium's own /favicon.ico says so.
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console", lambda m: problems.append(m.text) if "Security Policy" in m.text else None
        )
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        page.goto(f"{live_server.url}{urls(sale)[0]}")
        status, stock_now = page.locator("#live-status"), page.locator("#stock-now")
        expect(status).to_have_text("Updating every second.")
        expect(stock_now).to_have_text("30 of 30 left (Postgres' figure: not loaded in Redis yet).")
        expect(page.locator("#answers-legend")).to_have_text("No buys yet")

        opening = in_thread(storm, sale.pk, buyer_ids, 6)
        expect(stock_now).not_to_have_text("30 of 30", timeout=10_000)
        expect(page.locator("#answers-now")).not_to_have_text("Last second: 0 buy answers.")
        expect(page.locator("#answers-legend li").first).to_contain_text("Accepted: ")
        shots.take(page, "opening")
        opening.join()
        expect(stock_now).to_have_text("0 of 30 left.")
        expect(page.locator("#orders-now")).to_have_text(
            "0 orders pending; 30 confirmed, 0 failed."
        )
        expect(page.locator("#live-state")).to_have_text("Sold out")
        time.sleep(2.5)  # the storm's last seconds drawn
        shots.take(page, "running")
        lines = page.locator("#answers-chart path.line").count()
        legend = page.locator("#answers-legend li").all_inner_texts()
        settle_now = page.locator("#settle-now").inner_text()
        settle_lines = page.locator("#settle-chart path.line").count()

        in_thread(end_sale, sale.pk).join()
        expect(status).to_have_text("The sale has ended: these figures no longer update.")
        expect(page.locator("#live-state")).to_have_text("Ended")
        shots.take(page, "ended")
        polls = []
        page.on("request", lambda r: polls.append(r.url) if "/live/data/" in r.url else None)
        time.sleep(2.5)
        text = page.locator("body").inner_text()

    assert problems == []
    assert polls == [], "the page kept asking after the sale ended"
    assert [item.split(":")[0] for item in legend] == [
        "Accepted",
        "Sold out",
        "Already bought",
        "Rate limited",
    ]
    assert lines == 4
    assert settle_lines == 2, settle_now
    raw = NOT_IN_WORDS.search(text)
    assert raw is None, f"the page shows {raw.group()!r}:\n{text}"
    assert Order.objects.filter(sale=sale, status=Order.Status.CONFIRMED).count() == 30
