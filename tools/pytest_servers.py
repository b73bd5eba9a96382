"""pytest plugin (``-p tools.pytest_servers``): start the throwaway servers before Django loads.

It must run before pytest-django imports the settings, which read the servers' URLs from the
environment; conftest.py is imported too late for that, hence a plugin with tryfirst.
"""

import os

import pytest

from tools import devservers

_servers: list[devservers.Server] = []


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if early_config.option.help or early_config.option.version:
        return
    postgres = devservers.Postgres()
    redis = devservers.Redis()
    memcached = devservers.Memcached()
    for server in (postgres, redis, memcached):
        _servers.append(server)
        server.start()
    # Hermetic: whatever the shell had, the tests use only these servers.
    for name in ("HTML_CACHE_URL", "SESSION_CACHE_URL", "CODES_CACHE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DATABASE_URL=postgres.url,
        REDIS_URL=redis.url,
        CACHE_URL="locmemcache://",
        MEMCACHED_LOCATION=memcached.location,
        DJANGO_SETTINGS_MODULE="config.settings.test",
    )


def pytest_unconfigure(config):
    while _servers:
        _servers.pop().stop()
