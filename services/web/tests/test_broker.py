"""config/broker.py: closing a channel whose transport has already lost its client (what
kombu 5.7 does when Redis drops under load) must not kill the worker, nor lose a message."""

import os

import redis
from kombu import Connection, Exchange, Queue


def test_a_channel_closed_after_its_transport_lost_the_client_keeps_its_messages():
    url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/7"  # a database of its own
    store = redis.Redis.from_url(url)
    store.flushdb()
    queue = Queue("qbuy-broker-test", Exchange("qbuy-broker-test"), "qbuy-broker-test")
    with Connection(url, transport="config.broker:Transport") as conn:
        conn.Producer().publish(
            {"order": "x"}, exchange=queue.exchange, routing_key="qbuy-broker-test", declare=[queue]
        )
        channel = conn.default_channel
        message = queue(channel).get(no_ack=False)  # delivered, not acked: in "unacked"
        assert message is not None and store.hlen("unacked") == 1
        conn.transport.client = None  # the state kombu's Connection._close leaves it in
        channel.close()  # kombu's own transport raises AttributeError('hostname') here
    # Still there for the visibility timeout to hand out again: nothing lost.
    assert store.hlen("unacked") == 1
    store.flushdb()
