"""Production: no secret defaults, HTTPS behind a TLS-terminating proxy."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY, SMS_BACKEND, SMS_WEBHOOK_TOKEN, SMS_WEBHOOK_URL, env

# Markers of keys that are published, not secret: Django's startproject default, our dev/test
# defaults, and .env.example's placeholder (matched by marker, not by the exact string, so an
# edited placeholder like "change-me-..." with other characters is refused too).
_PUBLISHED_KEY_MARKERS = ("django-insecure", "not-secret", "change-me", "changeme")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("Production needs SECRET_KEY: at least 50 random characters.")
if any(marker in SECRET_KEY.lower() for marker in _PUBLISHED_KEY_MARKERS):
    raise ImproperlyConfigured(
        "SECRET_KEY is a published placeholder (e.g. .env.example's); production needs"
        " 50+ random characters of your own, e.g. python -c 'import secrets;"
        " print(secrets.token_urlsafe(50))'."
    )

# console, file and locmem put every login code in the logs, a file or memory, where anyone who
# reads them logs in as anyone. Refused like a weak key; a laptop running production settings
# over plain HTTP (.env.example, the container suite) opts out explicitly. Kubernetes never does.
SMS_ALLOW_INSECURE_BACKEND = env.bool("SMS_ALLOW_INSECURE_BACKEND", default=False)
if not SMS_ALLOW_INSECURE_BACKEND:
    from qbuy_core.sms import INSECURE as _INSECURE_SMS_BACKENDS

    if SMS_BACKEND in _INSECURE_SMS_BACKENDS:
        raise ImproperlyConfigured(
            f"SMS_BACKEND={SMS_BACKEND} writes login codes where others can read them; production"
            " needs a real provider (e.g. SMS_BACKEND=webhook with SMS_WEBHOOK_URL and"
            " SMS_WEBHOOK_TOKEN). On a laptop only: SMS_ALLOW_INSECURE_BACKEND=true."
        )
    if SMS_BACKEND == "webhook":
        # The ConfigMap's placeholder (k8s/base/configmap.yaml) must be replaced, and the bearer
        # token must not cross the network in clear text.
        if not SMS_WEBHOOK_URL.startswith("https://") or any(
            marker in SMS_WEBHOOK_URL.lower() for marker in (".invalid", "replace-me")
        ):
            raise ImproperlyConfigured(
                "SMS_WEBHOOK_URL must be your SMS gateway's https:// address (not the"
                " ConfigMap's placeholder)."
            )
        if not SMS_WEBHOOK_TOKEN or "replace-me" in SMS_WEBHOOK_TOKEN.lower():
            raise ImproperlyConfigured("SMS_BACKEND=webhook needs SMS_WEBHOOK_TOKEN (a Secret).")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# Off only for plain-HTTP laptops (.env.example); a real deployment keeps the defaults.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
