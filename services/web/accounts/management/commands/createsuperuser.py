"""Django's createsuperuser, except that DJANGO_SUPERUSER_PASSWORD must pass the password
validators too: Django checks them only for a password typed at the prompt (where they are on
through AUTH_PASSWORD_VALIDATORS), so a deploy script could set "1" without a word."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


class Command(createsuperuser.Command):
    def handle(self, *args, **options):
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not options["interactive"] and password is not None:
            User = get_user_model()
            username = options[User.USERNAME_FIELD] or os.environ.get(
                "DJANGO_SUPERUSER_" + User.USERNAME_FIELD.upper()
            )
            try:
                validate_password(password, User(**{User.USERNAME_FIELD: username}))
            except ValidationError as err:
                raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(err.messages)) from None
        return super().handle(*args, **options)
