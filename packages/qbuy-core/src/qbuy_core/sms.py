"""SMS backends: how a verification code reaches a phone.

A real provider implements ``BaseSmsBackend.send`` (one HTTP call to the provider, raising
``SmsDeliveryError`` on failure) and is selected with ``SMS_BACKEND = "dotted.path.Class"``.
The built-in names are ``webhook`` (a real gateway over HTTPS) and, for laptops and tests only,
``console``, ``file`` and ``locmem``: those put the codes where others can read them, so
production settings refuse them (INSECURE).
"""

import json
import logging
import threading
import urllib.error
import urllib.request
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
    "webhook": "qbuy_core.sms.WebhookSmsBackend",
}
# Backends that write the code where someone other than the phone's owner can read it (logs,
# a file, memory): development and tests only.
INSECURE = frozenset(
    {"console", "file", "locmem", *(BUILTIN[n] for n in ("console", "file", "locmem"))}
)


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


class WebhookSmsBackend(BaseSmsBackend):
    """POSTs ``{"to", "text"}`` as JSON to SMS_WEBHOOK_URL with ``Authorization: Bearer``.

    The shape most SMS gateways (or a small adapter in front of one) accept. The timeout is
    short because the user waits on it inside the request; a failure is SmsDeliveryError, which
    the views answer with a 503, never a 500.
    """

    def __init__(self):
        self.url = getattr(settings, "SMS_WEBHOOK_URL", "")
        self.token = getattr(settings, "SMS_WEBHOOK_TOKEN", "")
        self.timeout = getattr(settings, "SMS_WEBHOOK_TIMEOUT", 5.0)
        if not self.url.startswith(("https://", "http://")):
            raise ImproperlyConfigured("SMS_BACKEND=webhook needs SMS_WEBHOOK_URL (https://...)")

    def send(self, *, phone: str, code: str) -> None:
        body = json.dumps({"to": phone, "text": self.message(code)}).encode()
        # S310: the scheme was checked in __init__ (http or https, never file:).
        request = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read(1024)
        except urllib.error.HTTPError as exc:
            # Never the phone or the code in the message: it reaches the logs.
            raise SmsDeliveryError(f"SMS gateway answered {exc.code}") from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            raise SmsDeliveryError(f"SMS gateway unreachable: {type(exc).__name__}") from None


def get_backend() -> BaseSmsBackend:
    name = settings.SMS_BACKEND
    try:
        cls = import_string(BUILTIN.get(name, name))
    except ImportError as exc:
        raise ImproperlyConfigured(f"Unknown SMS_BACKEND {name!r}") from exc
    return cls()
