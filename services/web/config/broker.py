"""kombu's Redis transport, with one bug of kombu 5.7 worked around (issue 9, item 2).

When Redis goes away under load, Celery closes the broker connection before reconnecting. The
channel's close hands its unacknowledged messages back to Redis through a client built from
``transport.client``, which kombu has already set to None by then: ``AttributeError: 'NoneType'
object has no attribute 'hostname'`` escapes ``ignore_errors`` (it is no connection error) and
the worker dies with "Unrecoverable error" (seen in about 1 of 20 Redis restarts of
``make faults``). Skipping that restore loses nothing: the messages stay in Redis' ``unacked``
hash, and the next consumer hands them out again after BROKER_VISIBILITY_TIMEOUT; the order
task is idempotent and the reconciler is the backstop.

Selected by ``CELERY_BROKER_TRANSPORT`` (settings/base.py); the broker URL stays redis://.
"""

import logging

from kombu.transport import redis

logger = logging.getLogger("qbuy.celery")


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except AttributeError as exc:
            logger.warning(
                "%d unacked message(s) left for the visibility timeout to restore: %r",
                len(self._delivered),
                exc,
            )
            return None


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
