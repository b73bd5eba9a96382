"""SMS backends: how a verification code reaches a phone.

A real provider implements ``BaseSmsBackend.send`` (one HTTP call to the provider, raising
``SmsDeliveryError`` on failure) and is selected with ``SMS_BACKEND = "dotted.path.Class"``.
The built-in names are ``console``, ``file`` and ``locmem``.
"""

import json
import logging
import threading
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger("qbuy.sms")

# Like django.core.mail.outbox: the locmem backend appends here so tests can read the codes.
outbox: list[dict] = []

BUILTIN = {
    "console": "qbuy_core.sms.ConsoleSmsBackend",
    "file": "qbuy_core.sms.FileSmsBackend",
    "locmem": "qbuy_core.sms.LocmemSmsBackend",
}


class SmsDeliveryError(Exception):
    pass


class BaseSmsBackend:
    def message(self, code: str) -> str:
        minutes = settings.SMS_CODE_TTL // 60
        return f"Your qbuy code is {code}. It expires in {minutes} minutes."

    def send(self, *, phone: str, code: str) -> None:
        raise NotImplementedError


class ConsoleSmsBackend(BaseSmsBackend):
    def send(self, *, phone: str, code: str) -> None:
        logger.info("SMS to %s: %s", phone, self.message(code))


class FileSmsBackend(BaseSmsBackend):
    """One JSON line per message, so a load test or a developer can tail the file."""

    _lock = threading.Lock()

    def __init__(self):
        path = getattr(settings, "SMS_FILE_PATH", "")
        if not path:
            raise ImproperlyConfigured("SMS_BACKEND=file needs SMS_FILE_PATH")
        self.path = path

    def send(self, *, phone: str, code: str) -> None:
        line = json.dumps({"phone": phone, "code": code, "sent_at": datetime.now(UTC).isoformat()})
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


class LocmemSmsBackend(BaseSmsBackend):
    def send(self, *, phone: str, code: str) -> None:
        outbox.append({"phone": phone, "code": code, "text": self.message(code)})


def get_backend() -> BaseSmsBackend:
    name = settings.SMS_BACKEND
    try:
        cls = import_string(BUILTIN.get(name, name))
    except ImportError as exc:
        raise ImproperlyConfigured(f"Unknown SMS_BACKEND {name!r}") from exc
    return cls()
