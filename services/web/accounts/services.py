"""Phone login: issue SMS codes under rate limits, and turn a right code into a user."""

import secrets
import time

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import caches
from django.db import transaction

from qbuy_core import code_store
from qbuy_core.signals import sms_code_issued

from .models import User
from .phone import normalize_phone
from .ratelimit import Limit
from .ratelimit import RateLimited as RateLimited  # raised by the services; views catch it here


class InvalidPhone(Exception):
    pass


class InvalidCode(Exception):
    """Wrong, expired, used, never sent or dead from too many tries: one answer for all, so the
    answer does not tell a stranger whether a phone has a live code."""


def _limits_cache():
    return caches[settings.SMS_CODE_CACHE]


def _take_phone_slot(phone: str) -> None:
    key = f"sms:sent:{phone}"
    now = int(time.time())
    if not _limits_cache().add(key, now, timeout=settings.SMS_PHONE_INTERVAL):
        sent_at = _limits_cache().get(key) or now
        raise RateLimited(retry_after=max(1, settings.SMS_PHONE_INTERVAL - (now - int(sent_at))))


def _count_ip_send(ip: str) -> None:
    Limit("sms-ip", settings.SMS_IP_HOURLY_LIMIT, 3600).hit(ip)


def generate_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def sms_code_request(*, phone: str, ip: str, path: str, sender=None) -> str:
    """Issue a code for ``phone``; returns the normalised phone. Raises InvalidPhone/RateLimited."""
    normalized = normalize_phone(phone)
    if normalized is None:
        raise InvalidPhone(phone)
    _count_ip_send(ip)
    _take_phone_slot(normalized)
    code = generate_code(settings.SMS_CODE_LENGTH)
    sms_code_issued.send(
        sender=sender or sms_code_request, path=path, phone=normalized, code=code, ip=ip
    )
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
