"""The guarded Redis transport restores unacked messages after its connection was torn down (issue 16, finding 2).

On a broker reconnect Celery closes the old kombu `Connection`, which detaches its transport
(`transport.client = None`); a channel of that transport closed afterwards (or its periodic
`restore_visible`) builds a fresh pool from `transport.client.hostname` and raised
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which ended the worker's main process.
The guarded channel remembers its connection info and restores the messages to their queue.
"""

from __future__ import annotations

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from tests.support.services import PrivateRedis
from workers.brokers import guarded_redis


@pytest.fixture
def redis_server():
    server = PrivateRedis(appendonly=True)  # a stopped server keeps its unacked hash
    yield server
    server.close()


def _deliver_one_unacked(transport_cls, url: str):
    """A connection whose channel holds one delivered, unacked message of queue `q`."""
    conn = Connection(url, transport=transport_cls)
    channel = conn.channel()
    queue = Queue("q", Exchange("q", type="direct"), "q", channel=channel)
    queue.declare()
    producer = conn.Producer(channel)
    producer.publish({"job": 1}, exchange=queue.exchange, routing_key="q", declare=[queue])
    message = queue.get(no_ack=False)
    assert message is not None and channel.qos._delivered
    return conn, channel


def _detach_then_close(conn, channel) -> None:
    # what a reconnect leaves behind: the transport detached from its client, then the channel closed
    conn._do_close_transport()
    channel.close()


def test_stock_kombu_dies_on_the_detached_transport(redis_server):
    # The failure this guards against, on kombu's own transport (if this stops failing, kombu fixed it)
    conn, channel = _deliver_one_unacked(kombu_redis.Transport, redis_server.url)
    with pytest.raises(AttributeError, match="hostname"):
        _detach_then_close(conn, channel)


def test_the_guarded_channel_restores_the_unacked_message_to_its_queue(redis_server):
    conn, channel = _deliver_one_unacked(guarded_redis.Transport, redis_server.url)
    client = redis_server.client()
    assert (client.llen("q"), client.hlen("unacked")) == (0, 1)
    _detach_then_close(conn, channel)
    # Then the message is back on its queue, and no longer in the unacked hash
    assert (client.llen("q"), client.hlen("unacked")) == (1, 0)
    client.close()


def test_with_redis_down_the_guarded_channel_raises_a_connection_error_not_an_attribute_error(redis_server):
    conn, channel = _deliver_one_unacked(guarded_redis.Transport, redis_server.url)
    redis_server.stop()
    conn._do_close_transport()
    # a connection error is what kombu and Celery expect from a broker that is gone (they retry on it);
    # the message stays in Redis's unacked hash, restored by `restore_visible` after the visibility timeout
    with pytest.raises(channel.connection_errors):
        channel.close()
    redis_server.start()
    client = redis_server.client()
    assert client.hlen("unacked") == 1
    client.close()


def test_a_channel_lends_one_client_per_pool_instead_of_building_one_per_publish(redis_server):
    # kombu builds a `redis.Redis` per publish (about 0.1 ms of the outbox relay's CPU each); the guarded channel
    # lends one over its pool, and a new one once a disconnect replaced the pool
    conn = Connection(redis_server.url, transport=guarded_redis.Transport)
    channel = conn.channel()
    lent = []
    original = channel._create_client

    def counted(*args, **kwargs):
        lent.append(original(*args, **kwargs))
        return lent[-1]

    channel._create_client = counted
    queue = Queue("q", Exchange("q", type="direct"), "q", channel=channel)
    queue.declare()
    producer = conn.Producer(channel)
    for n in range(3):
        producer.publish({"job": n}, exchange=queue.exchange, routing_key="q", declare=[queue])
    with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
        assert first is second and first.connection_pool is channel.pool
    assert len(lent) == 1

    channel._disconnect_pools()  # what kombu does when the connection breaks
    producer.publish({"job": 3}, exchange=queue.exchange, routing_key="q", declare=[queue])
    with channel.conn_or_acquire() as third:
        assert third is not first and third.connection_pool is channel.pool
    assert len(lent) == 2
    client = redis_server.client()
    assert client.llen("q") == 4
    client.close()
    conn.close()
