from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        # Connects the receivers (dispatch_uid each); an import error must stop start-up, not
        # leave the user cache without invalidation.
        from . import receivers  # noqa: F401
