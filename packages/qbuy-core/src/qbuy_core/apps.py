from django.apps import AppConfig


class QbuyCoreConfig(AppConfig):
    name = "qbuy_core"
    verbose_name = "qbuy core"

    def ready(self):
        # Importing the module connects its @receiver functions (each with a dispatch_uid, so a
        # second import cannot double-connect). No suppress(ImportError): a broken receivers
        # module must stop start-up, not silently drop cache invalidation.
        from . import receivers  # noqa: F401
        from .cache_close import install

        install()
