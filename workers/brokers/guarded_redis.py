"""kombu's Redis transport with three changes: a message it cannot turn into a kombu `Message` is quarantined,
a channel outlives the reconnect that detached its transport, and a channel lends one Redis client instead of
building one per publish.

kombu 5.7's `Channel._brpop_read` calls `loads()` on the popped bytes and builds the `Message` (base64 body
decode included) inside the worker's poll loop; either raising ended the worker's main process. Here the
popped envelope is checked first: not JSON, not the shape kombu reads, or a body its encoding cannot decode,
and it goes to `workers.quarantine` instead of kombu. Every well-formed message takes kombu's own path.

On a broker reconnect Celery closes the old kombu `Connection`, which sets its transport's `client` to None.
A channel of that transport closed afterwards (restoring its unacked messages) or swept by the periodic
`restore_visible` builds a new pool from `transport.client.hostname`: kombu 5.7.0 (the newest) then raised
`AttributeError: 'NoneType' object has no attribute 'hostname'` out of the worker's event loop, which ended
the main process (issue 16, finding 2). The channel here remembers the connection info it was opened with
and builds the pool from that, so the messages go back to their queue; with the server still down that is a
connection error, which kombu and Celery retry, and the messages stay in the unacked hash for
`restore_visible`.

`_brpop_read` is kombu 5.7.0's own (pinned in pyproject.toml) with that check added; re-read it on an upgrade.
`RedisBroker.install` makes this the transport of the `redis` scheme (the embedded broker's too).
"""

from __future__ import annotations

from contextlib import contextmanager

import redis
from kombu.exceptions import KombuError
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from .. import quarantine
from ..quarantine import envelope_problem

__all__ = ["Channel", "Transport", "TRANSPORT", "envelope_problem"]

TRANSPORT = "workers.brokers.guarded_redis:Transport"


class Channel(kombu_redis.Channel):
    """A Redis channel whose poll loop survives any popped bytes, and whose pool survives a detached transport."""

    _conninfo = None  # the kombu Connection this channel was opened with (its hostname, port, credentials)

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport.client is not None:
            self._conninfo = transport.client
            return super()._connparams(asynchronous=asynchronous)
        if self._conninfo is None:  # never connected: nothing to restore, a broker error to retry
            raise redis.exceptions.ConnectionError("the channel's connection is closed")
        transport.client = self._conninfo  # the detached transport, for this one read (single-threaded hub)
        try:
            return super()._connparams(asynchronous=asynchronous)
        finally:
            transport.client = None

    _shared_client = None  # the client `conn_or_acquire` lends (built on the channel's current pool)

    @contextmanager
    def conn_or_acquire(self, client=None):
        """kombu builds a new `redis.Redis` (copying its ~250 response callbacks) for every publish and every
        queue count; a client over the same pool is thread-safe, so the channel keeps one per pool."""
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared

    def _checked(self, item: bytes, queue: str):
        """The envelope of `item`, or None after quarantining it."""
        try:
            payload = loads(bytes_to_str(item))
        except (ValueError, TypeError, UnicodeDecodeError):
            return self._quarantine(queue, "envelope_not_json", item)
        reason = envelope_problem(payload)
        if reason is None:
            try:  # exactly what the consumer's callback will do next (the base64 body decode, mostly)
                self.Message(payload, channel=self)
            except (ValueError, TypeError, KeyError, KombuError):  # binascii.Error is a ValueError
                reason = "body_encoding"
        return payload if reason is None else self._quarantine(queue, reason, item)

    def _quarantine(self, queue: str, reason: str, item: bytes) -> None:
        with self.conn_or_acquire() as client:
            quarantine.quarantine(client, queue, reason, item, metrics=quarantine.bound_metrics())
        return None

    def _brpop_read(self, **options):
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                # if there's a ConnectionError, disconnect so the next iteration will reconnect automatically
                self.client.connection.disconnect()
                raise
            if dest__item:
                dest, item = dest__item
                dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                payload = self._checked(item, dest)
                if payload is not None:
                    self.connection._deliver(payload, dest)
                return True
            raise Empty()
        finally:
            self._in_poll = None  # type: ignore[assignment]  # as kombu does (it types it bool)
            self._flush_brpop_reauth()


class Transport(kombu_redis.Transport):
    """The `redis` transport with the guarded channel."""

    Channel = Channel
