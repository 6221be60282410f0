"""The SQS call observer sees the transport's real calls: send, receive, delete, change visibility.

In-process against the moto server: a Celery app on the SQS broker publishes, a kombu consumer on the same
transport receives, acks and rejects (the blocking client a worker falls back to), and kombu's async curl
client receives as a worker's event loop does.
"""

from __future__ import annotations

import time

import pytest
from kombu import Consumer

from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.observe import RecordingObserver, install_observer
from workers.app import create_celery


@pytest.fixture
def recorder():
    rec = RecordingObserver()
    previous = install_observer(rec)
    yield rec
    install_observer(previous)


@pytest.fixture
def sqs_app(sqs_settings):
    bootstrap(sqs_settings)
    sqs_settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_celery(sqs_settings)


def _send(app, name="stt.noop", **options):
    app.send_task(name, args=["ref-1"], ignore_result=True, **options)


def _ack_then_reject(app, queue: str = "stt") -> list:
    """Consume two messages from `queue` on the app's transport: ack the first, reject the second."""
    handled = []

    def on_message(body, message):
        (message.ack if not handled else message.reject)()
        handled.append(body)

    with app.connection_for_read() as conn:
        with Consumer(conn.default_channel, queues=[app.amqp.queues[queue]], callbacks=[on_message], accept=["json"]):
            deadline = time.monotonic() + 30
            while len(handled) < 2 and time.monotonic() < deadline:
                conn.drain_events(timeout=10)
    return handled


def test_publish_reports_one_successful_send(sqs_app, recorder):
    _send(sqs_app, "assessments.run", MessageGroupId="s:g", MessageDeduplicationId="d:1")
    [(op, seconds, ok, count)] = recorder.calls
    assert (op, ok, count) == ("send", True, 1) and 0 < seconds < 5


def test_blocking_receive_ack_and_reject_are_reported(sqs_app, recorder):
    # Given two messages on the stt queue
    _send(sqs_app)
    _send(sqs_app)

    # When a consumer on the same transport takes both, acks the first and rejects the second
    handled = _ack_then_reject(sqs_app)

    # Then receive carried the messages, the ack deleted one and the reject released the other (redrive queue)
    assert len(handled) == 2
    received = recorder.of("receive")
    assert sum(c[3] for c in received) == 2 and all(c[2] for c in received)
    assert [(c[2], c[3]) for c in recorder.of("delete")] == [(True, 1)]
    assert [(c[2], c[3]) for c in recorder.of("change_visibility")] == [(True, 1)]


def test_async_client_receive_reports_messages_and_empty_polls(sqs_app, recorder):
    from kombu.asynchronous import Hub, set_event_loop

    _send(sqs_app, "assessments.run", MessageGroupId="s:g", MessageDeduplicationId="d:2")
    hub = Hub()
    set_event_loop(hub)
    try:
        with sqs_app.connection_for_read() as conn:
            channel = conn.channel()
            name, url = channel.canonical_queue_name("assessments"), channel._new_queue("assessments")
            client = channel.asynsqs(queue=name)
            for _ in range(2):  # the message, then an empty poll (it is in flight now)
                got = []
                client.receive_message(name, url, number_messages=1, wait_time_seconds=0, callback=got.append)
                deadline = time.monotonic() + 10
                while not got and time.monotonic() < deadline:
                    hub.run_once()
                assert got
    finally:
        set_event_loop(None)
        hub.close()
    assert [(c[2], c[3]) for c in recorder.of("receive")] == [(True, 1), (True, 0)]


def test_failed_send_is_reported_as_an_error(sqs_app, sqs_settings, recorder):
    # Given the tts queue deleted behind the app's back
    _send(sqs_app, "tts.noop")  # resolves the URLs while the queue exists
    client = sqs_client(sqs_settings)
    name = dict(sqs_settings.sqs_queue_names)["tts"]
    client.delete_queue(QueueUrl=client.get_queue_url(QueueName=sqs_settings.sqs_queue_prefix + name)["QueueUrl"])

    # When a message is published to it
    with pytest.raises(Exception):  # noqa: B017 - any send error will do; the observer is under test
        _send(sqs_app, "tts.noop")

    # Then the observer saw the failed send
    assert [c[2] for c in recorder.of("send")][-1] is False


def test_an_observer_that_raises_never_breaks_a_publish(sqs_app):
    class Broken:
        def on_call(self, *args, **kwargs):
            raise RuntimeError("observer bug")

    previous = install_observer(Broken())
    try:
        _send(sqs_app)
    finally:
        install_observer(previous)


def _fresh_metrics():
    from prometheus_client import CollectorRegistry

    from coachup.metrics import Metrics

    return Metrics(CollectorRegistry())


def test_real_sqs_calls_move_every_coachup_sqs_metric(sqs_app):
    from workers.metrics_host import SqsMetricsObserver

    metrics = _fresh_metrics()
    previous = install_observer(SqsMetricsObserver(lambda: metrics))
    try:
        _send(sqs_app)
        _send(sqs_app)
        assert len(_ack_then_reject(sqs_app)) == 2
    finally:
        install_observer(previous)
    value = metrics.registry.get_sample_value
    for op in ("send", "receive", "delete", "change_visibility"):
        assert value(f"coachup_sqs_{op}_seconds_count") >= 1, op
    assert value("coachup_sqs_messages_enqueued_total", {"status": "ok"}) == 2
    assert value("coachup_sqs_messages_polled_total", {"outcome": "message"}) == 2
    assert value("coachup_sqs_messages_deleted_total", {"status": "ok"}) == 1
    assert value("coachup_sqs_visibility_changes_total", {"status": "ok"}) == 1


def test_failed_calls_and_empty_polls_are_counted_as_such():
    from workers.metrics_host import SqsMetricsObserver

    metrics = _fresh_metrics()
    observer = SqsMetricsObserver(lambda: metrics)
    for call in [
        ("send", 0.1, False, 1),
        ("receive", 0.1, False, 0),
        ("receive", 5.0, True, 0),
        ("delete", 0.1, False, 1),
        ("change_visibility", 0.1, False, 1),
    ]:
        observer.on_call(*call)
    value = metrics.registry.get_sample_value
    assert value("coachup_sqs_messages_enqueued_total", {"status": "error"}) == 1
    assert value("coachup_sqs_messages_deleted_total", {"status": "error"}) == 1
    assert value("coachup_sqs_visibility_changes_total", {"status": "error"}) == 1
    assert value("coachup_sqs_messages_polled_total", {"outcome": "error"}) == 1
    assert value("coachup_sqs_messages_polled_total", {"outcome": "empty"}) == 1
