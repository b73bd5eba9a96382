"""Words and numbers as the pages show them: a price with its currency, a state in words, a
time a person reads. Absolute on the server (pages are cached and shared); site.js turns the
<time> elements into relative ones ("opens in 3 min") in the browser."""

from decimal import Decimal

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
SALE_STATES = {
    "open": "On sale now",
    "sold_out": "Sold out",
    "upcoming": "Opens soon",
    "ended": "Ended",
}
ORDER_STATES = {"pending": "Confirming…", "confirmed": "Confirmed", "failed": "Failed"}
# The codes in words; any other reason (the shop's cancel and its message) is shown as it is.
REASONS = {"sold_out": "sold out", "timeout": "timed out"}


@register.filter
def money(amount: Decimal) -> str:
    """9.99 -> "$9.99" (USD), "9.99 CHF" for a currency without a symbol here."""
    code = settings.CURRENCY
    symbol = SYMBOLS.get(code)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {code}"


@register.filter
def sale_state(state: str) -> str:
    return SALE_STATES.get(state, state.replace("_", " ").capitalize())


@register.filter
def order_state(order) -> str:
    words = ORDER_STATES.get(order.status, order.status.capitalize())
    if order.reason:
        words += f": {REASONS.get(order.reason, order.reason)}"
    return words


def _shown(moment) -> str:
    """15:30 UTC today, Nov 25, 15:30 UTC this year, Nov 25, 2027 15:30 UTC otherwise."""
    moment, today = timezone.localtime(moment), timezone.localdate()
    clock = f"{moment:%H:%M %Z}"
    if moment.date() == today:
        return clock
    if moment.year == today.year:
        return f"{moment:%b} {moment.day}, {clock}"
    return f"{moment:%b} {moment.day}, {moment.year} {clock}"


@register.simple_tag
def when(moment, verb=""):
    """<time datetime="ISO" data-verb="opens">opens Nov 25, 14:27 UTC</time>: absolute here,
    where the page is cached for everyone; site.js rewrites the text as "opens in 3 min" (or
    "ends in 4 min") in the browser when the moment is near."""
    text = f"{verb} {_shown(moment)}" if verb else _shown(moment)
    return format_html(
        '<time datetime="{}" data-verb="{}">{}</time>', moment.isoformat(), verb, text
    )
