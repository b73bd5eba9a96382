"""Ending a user's sessions on every device (services: writes, keyword-only)."""

from django.db.models import F

from . import user_cache
from .models import User


def user_logout_everywhere(*, user: User) -> None:
    """Invalidate every session of ``user``, the caller's too.

    Sessions live in Redis, keyed by an id we cannot list per user; instead the generation is
    part of the session auth hash, so each session fails its check on its next request and is
    flushed there. F() so two concurrent calls both count.
    """
    User.objects.filter(pk=user.pk).update(session_generation=F("session_generation") + 1)
    user_cache.forget(user.pk)  # update() sends no signal
    user.refresh_from_db(fields=["session_generation"])
