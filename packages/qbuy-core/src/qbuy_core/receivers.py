"""Thin signal receivers: each hands its work to one module function."""

from django.core.signals import request_finished
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import code_store, logcontext, page_cache, sms
from .signals import sms_code_issued


@receiver(sms_code_issued, dispatch_uid="qbuy_core.receivers.store_and_send_code")
def store_and_send_code(sender, *, phone, code, ip="", **kwargs):
    # Store first: a code the user receives must already be verifiable. The requesting address
    # owns the code: only its wrong guesses can kill it (code_store explains why).
    code_store.save(phone=phone, code=code, owner=ip)
    sms.get_backend().send(phone=phone, code=code)


@receiver(post_save, dispatch_uid="qbuy_core.receivers.drop_pages_on_save")
@receiver(post_delete, dispatch_uid="qbuy_core.receivers.drop_pages_on_delete")
def drop_cached_pages(sender, instance, **kwargs):
    """Models that appear on cached pages say which with a ``cached_paths()`` method."""
    cached_paths = getattr(instance, "cached_paths", None)
    if cached_paths is None:
        return
    paths = cached_paths()
    page_cache.drop(paths)
    # Again after commit: a request between the two could have cached the old row again.
    transaction.on_commit(lambda: page_cache.drop(paths), robust=True)


@receiver(request_finished, dispatch_uid="qbuy_core.receivers.end_log_scope")
def end_log_scope(sender, **kwargs):
    """The request's log fields (RequestMetaMiddleware) end with its response."""
    logcontext.clear()
