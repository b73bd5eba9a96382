"""The user of a code-login session, from Redis instead of Postgres (issue 20).

Django's auth loads the session's user from Postgres on every request that asks who it is,
the buy endpoint's included, and the connection's health check adds a ``SELECT 1`` before it:
a third of a refused buy's work at a sale's opening. Here the user comes from the sessions'
cache, one ``MGET`` with the session's own Redis, and the session auth hash is still checked
against it by Django (accounts.models.User.get_session_auth_hash).

A change must refuse at once (a deactivation, a password change, "log out everywhere"): every
save or delete of a user, and the bulk updates that send no signal, set a new random version
for the user after the COMMIT (``forget``); an entry is served only if it was built under the
version that is current now. A request that read the old row while the change committed wrote
an entry under the old version, which the next request refuses. The version outlives any entry
built before it (VERSION_TTL > ENTRY_TTL), so an expired version can never make such an entry
current again. Staff accounts are never cached: they are few, and their password hashes stay
out of Redis.
"""

import uuid

from django.conf import settings
from django.core.cache import caches
from django.db import transaction

from .models import User

ENTRY_TTL = 300  # seconds an entry is kept: the users active in a sale, not everyone
VERSION_TTL = 2 * ENTRY_TTL


def _cache():
    return caches[settings.SESSION_CACHE_ALIAS]


def _keys(user_id) -> tuple[str, str]:
    return f"user:{user_id}", f"user:{user_id}:version"


def load(user_id) -> User | None:
    """The active user ``user_id`` (None if there is none): the cached entry if it is current,
    else from Postgres, kept for the next request."""
    key, version_key = _keys(user_id)
    found = _cache().get_many([key, version_key])
    version = found.get(version_key)
    entry = found.get(key)
    if entry is not None and entry[0] == version:
        return entry[1]
    user = User._default_manager.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return None
    if not (user.is_staff or user.is_superuser):
        _cache().set(key, (version, user), ENTRY_TTL)
    return user


def forget(user_id) -> None:
    """Make every cached entry of the user stale, after the current transaction commits."""
    transaction.on_commit(
        lambda: _cache().set(_keys(user_id)[1], uuid.uuid4().hex, VERSION_TTL), robust=True
    )
