"""Phone login: issue SMS codes under rate limits, and turn a right code into a user."""

import secrets
import time
from dataclasses import dataclass

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


@dataclass
class WrongCode(Exception):
    attempts_left: int


class DeadCode(Exception):
    """No live code for that phone: never sent, expired, used, or too many wrong tries."""


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
    sms_code_issued.send(sender=sender or sms_code_request, path=path, phone=normalized, code=code)
    return normalized


@transaction.atomic
def sms_code_login(*, phone: str, code: str) -> User:
    """The user for a right code (created on first login).

    Raises InvalidPhone, WrongCode or DeadCode.
    """
    normalized = normalize_phone(phone)
    if normalized is None:
        raise InvalidPhone(phone)
    verdict, left = code_store.check(phone=normalized, code=code.strip())
    if verdict is code_store.Verdict.DEAD:
        raise DeadCode()
    if verdict is code_store.Verdict.WRONG:
        raise WrongCode(attempts_left=left)
    user, _ = User.objects.get_or_create(
        phone=normalized,
        defaults={"password": make_password(None)},  # unusable: SMS only
    )
    if not user.is_active:
        raise DeadCode()
    return user
