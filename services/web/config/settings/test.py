"""Tests: the servers come from tests/servers.py through the environment."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("SECRET_KEY", default="test-only-not-secret-5b2e9a7c1d3f4e6a8b0c")
SMS_BACKEND = env("SMS_BACKEND", default="locmem")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = False
# No collectstatic before tests: plain storage, no manifest to look names up in.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# WhiteNoise looks files up per request instead of scanning a STATIC_ROOT that does not exist.
WHITENOISE_AUTOREFRESH = True
