import logging

from redis.exceptions import RedisError

from . import store

logger = logging.getLogger("qbuy.waitingroom")


def sync_room(sender, instance, **kwargs):
    # A room switched off is dropped (its passes are worth nothing from then on); a room's
    # rate, end or opening moves with the sale. If Redis is down the room is lost anyway and
    # is built again from this row: log, don't fail.
    try:
        if instance.waiting_room:
            store.sync(instance)
        else:
            store.forget(instance.pk)
    except RedisError:
        logger.warning("sale %s saved but its waiting room in Redis was not updated", instance.pk)
