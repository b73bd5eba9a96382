"""The framework's ceiling: Django with nothing of qbuy's, served by qbuy's gunicorn config.

No apps, no middleware, no database, no templates: one view. `make bench` compares qbuy's
cheapest view (/healthz, with every middleware of config/settings/base.py) against this.
"""

import os

SECRET_KEY = os.environ.get("BARE_SECRET_KEY", "bench-only-not-secret-3f9a1c7e5b2d4086")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "barebench.urls"
WSGI_APPLICATION = "barebench.wsgi.application"
DATABASES: dict = {}
USE_TZ = True
