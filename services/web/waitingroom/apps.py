from django.apps import AppConfig
from django.db.models.signals import post_save


class WaitingRoomConfig(AppConfig):
    name = "waitingroom"
    verbose_name = "waiting room"

    def ready(self):
        from sales.models import Sale

        from .receivers import sync_room

        post_save.connect(sync_room, sender=Sale, dispatch_uid="waitingroom.sync_room")
