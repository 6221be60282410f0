"""kombu's SQS transport, adapted: logical queue names, queues resolved once, every SQS call observed.

- The Celery queues keep their logical names (`assessments`, `stt`, ...) on every broker; this channel maps
  each to its SQS queue (`coach-up-assessments.fifo`, ...) from `transport_options["coachup_queue_names"]`.
- Queues are never created here (`coachup sqs bootstrap` does that, with their DLQs): their URLs are looked up
  once per process and given to kombu as `predefined_queues`; a missing queue, or one whose own visibility
  timeout is below the settings', stops the process with the command that fixes it.
- Every send, receive, delete and visibility change, on the blocking boto3 client and on kombu's curl-based
  async client alike, is timed and reported to `coachup.sqs.observe`.
- A FIFO queue is received one message at a time, so a group's next message waits until the previous one
  is deleted (SQS may otherwise hand one worker two messages of a group, which its pool would run at once).
- A task that fails for good is rejected without requeue and its message is left in the queue (never
  deleted) and made visible again at once, so SQS's RedrivePolicy moves it to the DLQ after
  `maxReceiveCount` receives instead of after that many visibility timeouts.
- A received message no worker can read (a body that is not a JSON kombu envelope, an envelope kombu cannot
  turn into a `Message`, a broken base64 body) never reaches kombu's callback, where it raised out of the
  poll loop: it is reported as quarantined (`workers.quarantine`: log line, counter) and released like a
  failed task, so the RedrivePolicy moves it, bytes untouched, to the DLQ after `maxReceiveCount` receives.
"""

from __future__ import annotations

import logging
import threading
import time

from kombu.exceptions import KombuError
from kombu.transport import SQS
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from kombu.utils.objects import cached_property
from vine import promise

from coachup.sqs.observe import operation_for, report

from . import quarantine
from .quarantine import envelope_problem

__all__ = ["Transport", "Channel", "TRANSPORT"]

TRANSPORT = "workers.sqs_transport:Transport"
log = logging.getLogger("coachup.sqs")

_urls: dict[tuple, dict[str, str]] = {}
_urls_lock = threading.Lock()


# ---- blocking boto3 clients: botocore's own call events -----------------------------------------------------
def _before_call(model=None, context=None, **_kw) -> None:
    op = operation_for(getattr(model, "name", ""))
    if op is not None and context is not None:
        context["coachup_sqs"] = (op, time.monotonic())


def _after_call(http_response=None, parsed=None, context=None, **_kw) -> None:
    started = (context or {}).pop("coachup_sqs", None)
    if started is None:
        return
    op, t0 = started
    ok = http_response is not None and http_response.status_code < 300
    count = len((parsed or {}).get("Messages") or []) if op == "receive" else 1
    report(op, time.monotonic() - t0, ok, count if ok else (0 if op == "receive" else count))


def _after_call_error(context=None, **_kw) -> None:
    started = (context or {}).pop("coachup_sqs", None)
    if started is not None:
        op, t0 = started
        report(op, time.monotonic() - t0, False, 0 if op == "receive" else 1)


def observe_boto_client(client):
    """Report every observed call `client` makes (idempotent)."""
    events = client.meta.events
    events.register("before-call.sqs", _before_call, unique_id="coachup-sqs-before")
    events.register("after-call.sqs", _after_call, unique_id="coachup-sqs-after")
    events.register("after-call-error.sqs", _after_call_error, unique_id="coachup-sqs-error")
    return client


# ---- kombu's async (curl) client: wrap its one request method ----------------------------------------------
def observe_async_connection(conn):
    """Report every observed call the async connection makes (idempotent; wraps this instance only)."""
    if getattr(conn, "_coachup_observed", False):
        return conn
    inner = conn.make_request
    service_model = conn.sqs_connection.meta.service_model

    def make_request(operation_name, params, queue_url, verb, callback=None, protocol_params=None):
        op = operation_for(operation_name)
        if op is None:
            return inner(operation_name, params, queue_url, verb, callback=callback, protocol_params=protocol_params)
        started = time.monotonic()

        def done(response):
            ok = getattr(response, "status", 0) == 200
            count = (
                _received(service_model, operation_name, response)
                if (op == "receive" and ok)
                else (0 if op == "receive" else 1)
            )
            report(op, time.monotonic() - started, ok, count)
            return callback(response) if callback is not None else response

        return inner(operation_name, params, queue_url, verb, callback=promise(done), protocol_params=protocol_params)

    conn.make_request = make_request
    conn._coachup_observed = True
    return conn


def _received(service_model, operation_name, response) -> int:
    try:
        from kombu.asynchronous.aws.ext import get_response

        _, parsed = get_response(service_model.operation_model(operation_name), response.response)
        return len(parsed.get("Messages") or [])
    except Exception:  # counting must never cost a message
        return 0


class QueuesNotBootstrapped(SQS.UndefinedQueueException):
    """A configured queue does not exist on SQS; the message names the command that creates it."""


class Channel(SQS.Channel):
    """kombu's SQS channel with logical queue names, resolved queues and observed calls."""

    @cached_property
    def _logical_names(self) -> dict[str, str]:
        return dict(self.transport_options.get("coachup_queue_names") or {})

    def canonical_queue_name(self, queue_name):
        return self._logical_names.get(queue_name) or super().canonical_queue_name(queue_name)

    @cached_property
    def predefined_queues(self):
        names = tuple(sorted(set(self._logical_names.values())))
        if not names:
            return super().predefined_queues
        key = (self.endpoint_url, self.region, names)
        with _urls_lock:
            if key not in _urls:
                _urls[key] = self._lookup_urls(names)
        return {name: {"url": url} for name, url in _urls[key].items()}

    def _lookup_urls(self, names) -> dict[str, str]:
        client, urls, missing = self.sqs(), {}, []
        for name in names:
            try:
                urls[name] = client.get_queue_url(QueueName=name)["QueueUrl"]
            except client.exceptions.QueueDoesNotExist:
                missing.append(name)
        if missing:
            raise QueuesNotBootstrapped(f"SQS queues missing: {', '.join(missing)}; run `coachup sqs bootstrap` first")
        self._check_visibility(client, urls)
        return urls

    def _check_visibility(self, client, urls: dict[str, str]) -> None:
        # each queue's own VisibilityTimeout governs (not the transport option); shorter than the settings'
        # means a retry countdown or a long task outlives it and SQS delivers the message a second time
        wanted = int(self.transport_options.get("visibility_timeout") or 0)
        for name, url in urls.items():
            attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
            actual = int(attrs.get("VisibilityTimeout", 0))
            if actual < wanted:
                raise QueuesNotBootstrapped(
                    f"SQS queue {name} has VisibilityTimeout {actual} s, below COACHUP_VISIBILITY_TIMEOUT_S "
                    f"({wanted} s): a task could run twice; run `coachup sqs bootstrap` to align it"
                )

    @cached_property
    def endpoint_url(self):
        return self.transport_options.get("endpoint_url") or super().endpoint_url

    def _put(self, queue, message, **kwargs):
        # kombu decides FIFO-ness from the name it is given: hand it the SQS name
        return super()._put(self.canonical_queue_name(queue), message, **kwargs)

    def sqs(self, queue=None):
        # kombu passes the logical name on some paths (the blocking receive) and the SQS name on others
        return super().sqs(queue=None if queue is None else self.canonical_queue_name(queue))

    # SQS may return several messages of one FIFO group in a single receive; a worker would then run them on
    # two pool children at once, out of order. One message per receive keeps the group locked until it is
    # deleted, so a session's jobs run strictly one after another.
    def _is_fifo(self, queue) -> bool:
        return self.canonical_queue_name(queue).endswith(".fifo")

    def _get_async(self, queue, count=1, callback=None):
        return super()._get_async(queue, 1 if self._is_fifo(queue) else count, callback=callback)

    def _receive_message(self, queue, max_number_of_messages=1, wait_time_seconds=None):
        if self._is_fifo(queue):
            max_number_of_messages = 1
        return super()._receive_message(
            queue, max_number_of_messages=max_number_of_messages, wait_time_seconds=wait_time_seconds
        )

    def _new_boto_client(self, service, *args, **kwargs):
        client = super()._new_boto_client(service, *args, **kwargs)
        return observe_boto_client(client) if service == "sqs" else client

    def asynsqs(self, queue=None):
        queue = None if queue is None else self.canonical_queue_name(queue)
        return observe_async_connection(super().asynsqs(queue=queue))

    def _delete_rejected_message(self, delivery_tag):
        try:
            info = self.qos.get(delivery_tag).delivery_info
            handle, url = info["sqs_message"]["ReceiptHandle"], info["sqs_queue"]
        except KeyError:
            return
        queue = self.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
        if not self._has_redrive_policy(queue, url):
            return super()._delete_rejected_message(delivery_tag)
        self._release(queue, url, handle)

    def _release(self, queue, url: str, handle: str) -> None:
        try:  # visible again now: SQS counts each receive and dead-letters at maxReceiveCount
            self.sqs(queue=queue).change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        except Exception as exc:  # the message then returns after its visibility timeout: later, not lost
            log.warning(
                "could not release a failed message",
                extra={"event": "sqs_release_error", "error": {"type": type(exc).__name__}},
            )

    # ---- unreadable messages ---------------------------------------------------------------------------
    # kombu 5.7.0's `_on_messages_ready` (pinned in pyproject.toml; re-read it on an upgrade) with each
    # message checked before the consumer's callback: kombu builds the `Message` (base64 body decode
    # included) inside that callback, and an error there ended the worker's main process.
    def _on_messages_ready(self, queue, qname, messages):
        msgs = messages.get("Messages")
        callback = self.connection._callbacks.get(qname)
        if not msgs or callback is None:  # nothing, or the consumer is gone: kombu releases them
            return super()._on_messages_ready(queue, qname, messages)
        for msg in msgs:
            payload = self._checked(msg, qname, queue)
            if payload is not None:
                callback(payload)
        return len(msgs)

    def _checked(self, msg: dict, qname: str, url: str):
        """The payload of received `msg`, or None after reporting and releasing it (see the module doc)."""
        try:
            envelope = loads(bytes_to_str(self._decode_python_message_body(msg.get("Body") or "")))
        except (ValueError, TypeError, UnicodeDecodeError):
            return self._unreadable(msg, qname, url, "envelope_not_json")
        # kombu would wrap anything else as a raw body; only Celery publishes on these queues
        if not isinstance(envelope, dict) or "properties" not in envelope:
            return self._unreadable(msg, qname, url, "envelope_invalid")
        try:
            payload = self._message_to_python(msg, qname, url)
        except (AttributeError, TypeError, ValueError, KeyError):  # e.g. `properties` that is not an object
            return self._unreadable(msg, qname, url, "envelope_invalid")
        reason = envelope_problem(payload)
        if reason is None:
            try:  # exactly what the consumer's callback does next (the base64 body decode, mostly)
                self.Message(payload, channel=self)
            except (ValueError, TypeError, KeyError, KombuError):  # binascii.Error is a ValueError
                reason = "body_encoding"
        return payload if reason is None else self._unreadable(msg, qname, url, reason)

    def _unreadable(self, msg: dict, qname: str, url: str, reason: str) -> None:
        quarantine.quarantine(
            None,
            qname,
            reason,
            msg.get("Body") or "",
            metrics=quarantine.bound_metrics(),
            receive_count=quarantine.receive_count(msg),
        )
        queue = self.canonical_queue_name(qname)
        handle = msg.get("ReceiptHandle")
        try:  # without a RedrivePolicy it stays in flight: back after its visibility timeout, never deleted
            if handle and self._has_redrive_policy(queue, url):
                self._release(queue, url, handle)
        except Exception as exc:  # never out of the poll loop: it is back after its visibility timeout
            log.warning(
                "could not release an unreadable message",
                extra={"event": "sqs_release_error", "error": {"type": type(exc).__name__}},
            )
        return None


class Transport(SQS.Transport):
    """`broker_transport` for `sqs://` URLs (see `celeryconfig`)."""

    Channel = Channel
