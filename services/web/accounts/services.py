"""Phone login: issue SMS codes under rate limits, and turn a right code into a user."""

import logging
import math
import secrets
import time

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import caches
from django.db import transaction

from qbuy_core import code_store
from qbuy_core.signals import sms_code_issued
from qbuy_core.sms import SmsDeliveryError

from . import metrics
from .models import User
from .phone import calling_code, normalize_phone
from .ratelimit import Limit
from .ratelimit import RateLimited as RateLimited  # raised by the services; views catch it here

logger = logging.getLogger("qbuy.sms")


class InvalidPhone(Exception):
    pass


class InvalidCode(Exception):
    """Wrong, expired, used, never sent or dead from too many tries: one answer for all, so the
    answer does not tell a stranger whether a phone has a live code."""


def _limits_cache():
    return caches[settings.SMS_CODE_CACHE]


def _phone_slot_key(phone: str) -> str:
    return f"sms:sent:{phone}"


def _check_phone_slot(phone: str) -> None:
    """Refuse a second code to ``phone`` within SMS_PHONE_INTERVAL, without taking the slot."""
    sent_at = _limits_cache().get(_phone_slot_key(phone))
    if sent_at is not None:
        _refuse_phone_slot(int(sent_at))


def _take_phone_slot(phone: str) -> None:
    now = int(time.time())
    if not _limits_cache().add(_phone_slot_key(phone), now, timeout=settings.SMS_PHONE_INTERVAL):
        _refuse_phone_slot(int(_limits_cache().get(_phone_slot_key(phone)) or now))


def _refuse_phone_slot(sent_at: int) -> None:
    elapsed = int(time.time()) - sent_at
    raise RateLimited(
        retry_after=max(1, settings.SMS_PHONE_INTERVAL - elapsed), limit="sms-phone-interval"
    )


def _global_limit() -> Limit:
    return Limit("sms-global", settings.SMS_GLOBAL_HOURLY_LIMIT, 3600)


def sms_hour_count() -> int:
    """Codes the whole site has sent in this hour's window (SMS_GLOBAL_HOURLY_LIMIT's count)."""
    return _global_limit().count("all")


def _sms_limits(*, phone: str, ip: str) -> list[tuple[Limit, str]]:
    """The counted limits of one code, each with its identity, in the order they are spent:
    the requester's own budgets and the phone's, then the shared ones (the country prefix, the
    whole site), so that a request its own limits refuse never reaches a shared budget."""
    return [
        (Limit("sms-ip", settings.SMS_IP_HOURLY_LIMIT, 3600), ip),
        (Limit("sms-phone-day", settings.SMS_PHONE_DAILY_LIMIT, 86400), phone),
        (Limit("sms-prefix", settings.SMS_PREFIX_HOURLY_LIMIT, 3600), calling_code(phone)),
        (_global_limit(), "all"),
    ]


def _alarm_if_due(global_count: int) -> None:
    """One ERROR line per window, when the site's count reaches SMS_GLOBAL_ALARM_PERCENT of
    SMS_GLOBAL_HOURLY_LIMIT: the counter is one atomic INCR, so exactly one request sees the
    threshold, on whichever web process."""
    limit = settings.SMS_GLOBAL_HOURLY_LIMIT
    threshold = max(1, math.ceil(limit * settings.SMS_GLOBAL_ALARM_PERCENT / 100))
    if global_count == threshold:
        logger.error(
            "SMS budget alarm: %d of the %d codes allowed this hour are sent (%d%%); the"
            " rest of the hour's requests are refused once %d are (SMS_GLOBAL_HOURLY_LIMIT)",
            global_count,
            limit,
            settings.SMS_GLOBAL_ALARM_PERCENT,
            limit,
        )


def generate_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def sms_code_request(*, phone: str, ip: str, path: str, sender=None) -> str:
    """Issue a code for ``phone``; returns the normalised phone. Raises InvalidPhone/RateLimited.

    Every way of sending a code (the API, the login page) comes here, so they share one set of
    limits. All are checked before any is counted: a refused request spends nothing, else
    refused requests (for one phone, from one address) would eat the country's and the site's
    budget and deny everyone's login. Two racing requests may both pass the checks; the counts
    (atomic) still refuse the one beyond a limit, having spent only the budgets before it.
    """
    normalized = normalize_phone(phone)
    if normalized is None:
        metrics.sms_refused("invalid_phone")
        raise InvalidPhone(phone)
    limits = _sms_limits(phone=normalized, ip=ip)
    try:
        _check_phone_slot(normalized)
        for limit, ident in limits:
            limit.check(ident)
        limits[0][0].hit(limits[0][1])  # the address first: losing a race costs the racer only
        _take_phone_slot(normalized)
        for limit, ident in limits[1:]:
            count = limit.hit(ident)
    except RateLimited as refused:
        metrics.sms_refused(refused.limit)
        raise
    _alarm_if_due(count)  # the global limit is the last one counted
    code = generate_code(settings.SMS_CODE_LENGTH)
    try:
        sms_code_issued.send(
            sender=sender or sms_code_request, path=path, phone=normalized, code=code, ip=ip
        )
    except SmsDeliveryError:
        # No SMS went out: the phone's interval and day and the shared budgets are given back,
        # so a retry after the 503's Retry-After is not refused for a code that never arrived
        # (a provider outage would otherwise spend every phone's day). The address keeps its
        # count: retries from one address stay limited.
        _limits_cache().delete(_phone_slot_key(normalized))
        for limit, ident in limits[1:]:
            limit.give_back(ident)
        metrics.sms_refused("provider_error")
        raise
    metrics.sms_sent()
    return normalized


@transaction.atomic
def sms_code_login(*, phone: str, code: str, ip: str) -> User:
    """The user for a right code (created on first login).

    Guesses from the address that requested the code count against that code
    (SMS_CODE_MAX_ATTEMPTS) and can kill it. Guesses from any other address never touch the code
    but spend the phone's daily budget (LOGIN_PHONE_DAILY_FAILURES), a cooldown no new code
    resets, so a stranger can neither burn the owner's code nor grind it down. Failures from one
    address are limited across phones (LOGIN_IP_HOURLY_FAILURES). With no live code nothing is
    compared and the phone is not charged: there is nothing to guess, burn or probe.

    Raises InvalidPhone, InvalidCode or RateLimited.
    """
    normalized = normalize_phone(phone)
    if normalized is None:
        raise InvalidPhone(phone)
    _ip_failures().check(ip)
    live = code_store.live(phone=normalized)
    is_owner = live is not None and live.owner == ip
    if not is_owner:
        # Refused before the code exists too: a refusal only once a code is live would say so.
        _phone_failures().check(normalized)
    if live is None:
        _ip_failures().hit(ip)
        raise InvalidCode()
    if not is_owner:
        # Counted before comparing, so concurrent guesses cannot overshoot the budget; a right
        # code from another address (asked on Wi-Fi, typed on mobile data) costs one too.
        _phone_failures().hit(normalized)
    verdict = code_store.check(phone=normalized, code=code.strip(), counted=is_owner)
    if verdict is not code_store.Verdict.OK:
        _ip_failures().hit(ip)
        raise InvalidCode()
    user, _ = User.objects.get_or_create(
        phone=normalized,
        defaults={"password": make_password(None)},  # unusable: SMS only
    )
    if not user.is_active:
        raise InvalidCode()
    return user


def _ip_failures() -> Limit:
    return Limit("login-ip", settings.LOGIN_IP_HOURLY_FAILURES, 3600)


def _phone_failures() -> Limit:
    return Limit("login-phone", settings.LOGIN_PHONE_DAILY_FAILURES, 86400)
