"""CACHE_URL -> a CACHES entry, so every alias is built the same way.

Accepted URL schemes (django-environ): dummycache://, locmemcache://, filecache:///dir,
dbcache://table, pymemcache://host:port, pylibmc://host:port, redis://host:port/db.
"""

import environ

REDIS_BACKEND = "django_redis.cache.RedisCache"


def cache_config(url: str, *, key_prefix: str = "", ignore_exceptions: bool = False, **redis_opts):
    config = environ.Env.cache_url_config(url)
    if key_prefix:
        config["KEY_PREFIX"] = key_prefix
    if config["BACKEND"] == REDIS_BACKEND:
        options = config.setdefault("OPTIONS", {})
        # Bounded waits: a stuck Redis must fail a request in seconds, not hang a worker.
        options.setdefault("SOCKET_CONNECT_TIMEOUT", redis_opts.get("connect_timeout", 2))
        options.setdefault("SOCKET_TIMEOUT", redis_opts.get("timeout", 2))
        options.setdefault("IGNORE_EXCEPTIONS", ignore_exceptions)
    return config
