"""The adapted SQS channel's own checks, in-process against the moto server: the unreadable-message check
before kombu's callback (the transport half of tests/sqs/test_sqs_poison.py, which drives a real worker),
a failed task's message released for the RedrivePolicy, the queue checks at start, and the call observer's
hooks. Fast enough for `make mutation MODULE=sqs_transport`."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from types import SimpleNamespace

import pytest
from kombu import Consumer

from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.observe import RecordingObserver, install_observer
from tests.support.broker import celery_envelope
from workers.app import create_celery
from workers.sqs_transport import QueuesNotBootstrapped, _after_call, _after_call_error, _before_call

QUEUE = "stt"  # a standard queue: a receive takes every message at once


@pytest.fixture
def sqs_app(sqs_settings):
    bootstrap(sqs_settings)
    sqs_settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_celery(sqs_settings)


@pytest.fixture
def recorder():
    rec = RecordingObserver()
    previous = install_observer(rec)
    yield rec
    install_observer(previous)


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _url(channel, logical: str = QUEUE) -> str:
    return channel.predefined_queues[channel.canonical_queue_name(logical)]["url"]


def _receive(client, url: str, n: int, *, visibility: int = 120) -> list[dict]:
    """Receive `n` messages (kept in flight for `visibility` s), as the transport gets them."""
    got: dict[str, dict] = {}
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        for m in client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility, AttributeNames=["All"]
        ).get("Messages", []):
            got[m["MessageId"]] = m
    assert len(got) == n, f"received {len(got)} of {n}"
    return list(got.values())


def _visible(client, url: str) -> int:
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def _events(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


# the bodies a worker cannot read, by the reason the check gives, and one it can
def _poisons() -> dict[str, list[str]]:
    return {
        "envelope_not_json": ["not json {", _b64(b"\xff\xfe not utf-8")],
        "envelope_invalid": [
            _b64(json.dumps([1, 2])),  # JSON, not an object
            _b64(json.dumps({"body": "x"})),  # no properties
            _b64(json.dumps({"body": "x", "properties": ["x"]})),  # properties that are no object
            _b64(json.dumps({**celery_envelope(QUEUE, _b64("[]")), "headers": ["x"]})),  # kombu reads it, Celery not
        ],
        "body_encoding": [_b64(json.dumps(celery_envelope(QUEUE, "!!not base64!!")))],
    }


def _good(task_id: str) -> str:
    return _b64(json.dumps(celery_envelope(QUEUE, _b64(json.dumps([["ref"], {}, {}])), task_id=task_id)))


def test_unreadable_messages_never_reach_the_consumer_and_are_released_for_the_dlq(sqs_app, caplog):
    client = sqs_client(sqs_app.coachup.settings)
    task_id = str(uuid.uuid4())
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        url = _url(channel)
        poisons = _poisons()
        bodies = [b for group in poisons.values() for b in group]
        for body in [*bodies, _good(task_id)]:
            client.send_message(QueueUrl=url, MessageBody=body)
        msgs = _receive(client, url, len(bodies) + 1)
        delivered: list = []
        channel.connection._callbacks[QUEUE] = delivered.append
        caplog.set_level(logging.INFO)

        # When the receive's messages are handed to the channel, as kombu's async receive does
        assert channel._on_messages_ready(url, QUEUE, {"Messages": msgs}) == len(msgs)

    # Then only the readable one reaches the consumer, and as kombu would have built it
    [payload] = delivered
    assert payload["headers"]["id"] == task_id
    assert payload["properties"]["delivery_info"]["sqs_queue"] == url
    # each unreadable one is reported once, with its reason, the digest of its bytes and its receive count
    events = _events(caplog, "message_quarantined")
    digest = {b: hashlib.sha256(b.encode()).hexdigest()[:16] for b in bodies}
    assert sorted((e.queue, e.reason, e.digest, e.receiveCount, e.keptIn) for e in events) == sorted(
        (QUEUE, reason, digest[b], 1, "dlq") for reason, group in poisons.items() for b in group
    )
    # and released: visible again at once (SQS counts each receive toward maxReceiveCount); the good one is not
    again = _receive(client, url, len(bodies), visibility=0)
    assert sorted(m["Body"] for m in again) == sorted(bodies)
    assert _visible(client, url) == len(bodies) and not _events(caplog, "sqs_release_error")


def test_an_unreadable_message_whose_release_fails_is_reported_and_the_poll_goes_on(sqs_app, caplog):
    caplog.set_level(logging.INFO)
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        url = _url(channel)
        delivered: list = []
        channel.connection._callbacks[QUEUE] = delivered.append
        stale = {"MessageId": "m1", "Body": "not json {", "ReceiptHandle": "not-a-handle", "Attributes": {}}
        no_handle = {"MessageId": "m2", "Attributes": {}}  # no handle, and no body either
        assert channel._on_messages_ready(url, QUEUE, {"Messages": [stale, no_handle]}) == 2
        # a release path that fails before the release itself (here: no queue URL to ask for its policy)
        assert channel._on_messages_ready(None, QUEUE, {"Messages": [stale]}) == 1
    assert delivered == []
    events = _events(caplog, "message_quarantined")
    assert [(e.reason, e.digest) for e in events] == [
        ("envelope_not_json", hashlib.sha256(b"not json {").hexdigest()[:16]),
        ("envelope_not_json", hashlib.sha256(b"").hexdigest()[:16]),
        ("envelope_not_json", hashlib.sha256(b"not json {").hexdigest()[:16]),
    ]
    # the stale handle, then the missing URL; the message without a handle is not released at all
    warnings = _events(caplog, "sqs_release_error")
    assert [(w.getMessage(), w.error["type"]) for w in warnings] == [
        ("could not release a failed message", "ReceiptHandleIsInvalid"),
        ("could not release an unreadable message", "ParamValidationError"),
    ]


def test_quarantined_messages_are_counted_once_at_their_first_receive(sqs_app):
    from prometheus_client import CollectorRegistry

    from coachup.metrics import Metrics
    from workers import quarantine

    metrics = Metrics(CollectorRegistry())
    quarantine.bind_metrics(lambda: metrics)
    try:
        with sqs_app.connection_for_read() as conn:
            channel = conn.default_channel
            channel.connection._callbacks[QUEUE] = [].append
            for receives in ("1", "2"):
                msg = {"Body": "not json {", "Attributes": {"ApproximateReceiveCount": receives}}
                channel._on_messages_ready(_url(channel), QUEUE, {"Messages": [msg]})
    finally:
        quarantine.bind_metrics(None)
    value = metrics.registry.get_sample_value
    assert value("coachup_messages_quarantined_total", {"queue": QUEUE, "reason": "envelope_not_json"}) == 1


def test_nothing_received_or_nobody_consuming_is_left_to_kombu(sqs_app):
    client = sqs_client(sqs_app.coachup.settings)
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        url = _url(channel)
        delivered: list = []
        channel.connection._callbacks[QUEUE] = delivered.append
        assert channel._on_messages_ready(url, QUEUE, {}) == 0
        assert channel._on_messages_ready(url, QUEUE, {"Messages": []}) == 0
        assert delivered == []
        client.send_message(QueueUrl=url, MessageBody="not json {")
        msgs = _receive(client, url, 1)
        channel.connection._callbacks.pop(QUEUE, None)
        assert channel._on_messages_ready(url, QUEUE, {"Messages": msgs}) == 0  # kombu releases it, unread
    assert _visible(client, url) == 1


# ---- a failed task's message: released for the RedrivePolicy, deleted without one -------------------------
def _reject_one(app, queue: str = QUEUE) -> None:
    handled = []

    def on_message(body, message):
        message.reject()
        handled.append(body)

    with app.connection_for_read() as conn:
        with Consumer(conn.default_channel, queues=[app.amqp.queues[queue]], callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + 30
            while not handled and time.monotonic() < deadline:
                conn.drain_events(timeout=10)
    assert handled


def test_a_rejected_message_is_released_at_once_when_its_queue_has_a_dlq(sqs_app):
    client = sqs_client(sqs_app.coachup.settings)
    sqs_app.send_task("stt.noop", args=["ref-1"], ignore_result=True)
    _reject_one(sqs_app)
    with sqs_app.connection_for_read() as conn:
        url = _url(conn.default_channel)
    [again] = _receive(client, url, 1, visibility=0)  # visible again now, not after 120 s
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_a_rejected_message_is_deleted_when_its_queue_has_no_dlq(sqs_app):
    client = sqs_client(sqs_app.coachup.settings)
    with sqs_app.connection_for_read() as conn:
        url = _url(conn.default_channel)
    client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})
    assert "RedrivePolicy" not in client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    sqs_app.send_task("stt.noop", args=["ref-1"], ignore_result=True)
    _reject_one(sqs_app)
    attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_a_reject_of_an_unknown_delivery_does_nothing(sqs_app):
    with sqs_app.connection_for_read() as conn:
        assert conn.default_channel._delete_rejected_message("no-such-tag") is None


def test_a_release_that_fails_is_reported_not_raised(sqs_app, caplog):
    caplog.set_level(logging.INFO)
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        name = channel.canonical_queue_name(QUEUE)
        channel._release(name, _url(channel), "not-a-handle")
    [warning] = _events(caplog, "sqs_release_error")
    assert (
        warning.getMessage() == "could not release a failed message"
        and warning.error["type"] == "ReceiptHandleIsInvalid"
    )


# ---- the queues, checked once when the channel first needs them -------------------------------------------
def test_missing_queues_stop_the_channel_with_the_command_that_creates_them(sqs_settings):
    app = create_celery(sqs_settings)  # no bootstrap
    names = sorted(set(dict(app.conf.broker_transport_options["coachup_queue_names"]).values()))
    with pytest.raises(QueuesNotBootstrapped) as caught:
        with app.connection_for_read() as conn:
            conn.default_channel.predefined_queues  # noqa: B018 - the first use resolves the queues
    assert str(caught.value) == f"SQS queues missing: {', '.join(names)}; run `coachup sqs bootstrap` first"


def test_a_queue_whose_visibility_timeout_is_below_the_settings_stops_the_channel(sqs_settings):
    bootstrap(sqs_settings)  # every queue at the settings' 120 s
    longer = sqs_settings.replace(visibility_timeout_s=121)
    app = create_celery(longer)
    with pytest.raises(
        QueuesNotBootstrapped, match=r"VisibilityTimeout 120 s, below COACHUP_VISIBILITY_TIMEOUT_S \(121 s\)"
    ):
        with app.connection_for_read() as conn:
            conn.default_channel.predefined_queues  # noqa: B018


def test_queues_at_the_settings_visibility_timeout_resolve_to_their_urls(sqs_app, sqs_settings):
    client = sqs_client(sqs_settings)
    with sqs_app.connection_for_read() as conn:
        queues = conn.default_channel.predefined_queues
    assert queues and all(client.get_queue_url(QueueName=name)["QueueUrl"] == q["url"] for name, q in queues.items())
    assert set(queues) == set(dict(sqs_app.conf.broker_transport_options["coachup_queue_names"]).values())


# ---- the blocking client's call hooks -----------------------------------------------------------------------
def _call(op_name: str, *, status: int | None = 200, parsed=None, error: bool = False) -> dict:
    context: dict = {}
    _before_call(model=SimpleNamespace(name=op_name), context=context)
    if error:
        _after_call_error(context=context)
    else:
        _after_call(
            http_response=None if status is None else SimpleNamespace(status_code=status),
            parsed=parsed,
            context=context,
        )
    return context


@pytest.mark.parametrize(
    ("op_name", "kwargs", "expected"),
    [
        ("SendMessage", {}, ("send", True, 1)),
        ("ReceiveMessage", {"parsed": {"Messages": [{}, {}, {}]}}, ("receive", True, 3)),
        ("ReceiveMessage", {"parsed": {}}, ("receive", True, 0)),  # an empty poll
        ("ReceiveMessage", {"parsed": None}, ("receive", True, 0)),
        ("DeleteMessage", {"status": 299}, ("delete", True, 1)),
        ("ChangeMessageVisibility", {"status": 300}, ("change_visibility", False, 1)),
        ("SendMessage", {"status": 500}, ("send", False, 1)),
        ("ReceiveMessage", {"status": 500, "parsed": {"Messages": [{}]}}, ("receive", False, 0)),
        ("SendMessage", {"status": None}, ("send", False, 1)),  # no response at all
        ("SendMessage", {"error": True}, ("send", False, 1)),
        ("ReceiveMessage", {"error": True}, ("receive", False, 0)),
    ],
)
def test_each_observed_call_is_reported_once_with_its_outcome_and_count(recorder, op_name, kwargs, expected):
    context = _call(op_name, **kwargs)
    [(op, seconds, ok, count)] = recorder.calls
    assert (op, ok, count) == expected and 0 <= seconds < 5
    assert context == {}  # the timing is taken off the call's context


def test_calls_that_are_not_observed_report_nothing(recorder):
    _before_call(model=SimpleNamespace(name="GetQueueUrl"), context=(context := {}))
    assert context == {}
    _before_call(model=SimpleNamespace(name="SendMessage"), context=None)  # botocore without a context
    _after_call(http_response=SimpleNamespace(status_code=200), parsed={}, context={})
    _after_call(http_response=SimpleNamespace(status_code=200), parsed={}, context=None)
    _after_call_error(context={})
    _after_call_error(context=None)
    assert recorder.calls == []


# ---- the async receive: one message per FIFO receive, as many as asked on a standard queue ---------------
@pytest.mark.parametrize(("queue", "fifo", "asked"), [("stt", False, 10), ("assessments", True, 1)])
def test_the_async_receive_asks_for_what_the_queue_allows_and_hands_the_messages_on(sqs_app, queue, fifo, asked):
    from kombu.asynchronous import Hub, set_event_loop

    task = {"stt": "stt.noop", "assessments": "assessments.run"}[queue]
    for n in (1, 2):
        options = {"MessageGroupId": "s:one", "MessageDeduplicationId": f"d:{n}"} if fifo else {}
        sqs_app.send_task(task, args=[f"ref-{n}"], ignore_result=True, **options)
    hub = Hub()
    set_event_loop(hub)
    counts, handed, delivered = [], [], []
    try:
        with sqs_app.connection_for_read() as conn:
            channel = conn.channel()
            channel.connection._callbacks[queue] = delivered.append
            inner = channel._get_from_sqs

            def get_from_sqs(queue_name, queue_url, connection, count=1, callback=None):
                counts.append(count)
                return inner(queue_name, queue_url, connection, count=count, callback=callback)

            channel._get_from_sqs = get_from_sqs
            channel._get_async(queue, count=10, callback=handed.append)
            deadline = time.monotonic() + 20
            while not handed and time.monotonic() < deadline:
                hub.run_once()
    finally:
        set_event_loop(None)
        hub.close()
    # standard: every waiting message in one receive; FIFO: one, its group locked until it is deleted
    expected = 1 if fifo else 2
    assert counts == [asked] and handed == [expected] and len(delivered) == expected
    assert all(p["headers"]["task"] == task for p in delivered)
