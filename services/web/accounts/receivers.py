"""Thin signal receivers of the accounts app."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import user_cache
from .models import User


@receiver(post_save, sender=User, dispatch_uid="accounts.receivers.forget_saved_user")
@receiver(post_delete, sender=User, dispatch_uid="accounts.receivers.forget_deleted_user")
def forget_cached_user(sender, instance, created=False, update_fields=None, **kwargs):
    # A user just created has no entry yet, and last_login (written at every login) changes
    # nothing a session allows; any other save may.
    if created or (update_fields and set(update_fields) <= {"last_login"}):
        return
    user_cache.forget(instance.pk)
