"""Production: no secret defaults, HTTPS behind a TLS-terminating proxy."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import SECRET_KEY, env

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
