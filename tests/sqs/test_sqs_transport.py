"""The adapted kombu SQS channel: logical names map to SQS queues, and a FIFO receive takes one message.

moto (like SQS) can return several messages of one FIFO group in a single ReceiveMessage; a worker with two
pool children would then run a session's jobs side by side. The channel asks for one message at a time there.
"""

from __future__ import annotations

import time

import pytest

from coachup.sqs.admin import bootstrap
from workers.app import create_celery


@pytest.fixture
def sqs_app(sqs_settings):
    bootstrap(sqs_settings)
    sqs_settings.data_dir.mkdir(parents=True, exist_ok=True)
    return create_celery(sqs_settings)


def _publish_two(app, task: str, **fifo) -> None:
    for n in (1, 2):
        options = {"MessageGroupId": "s:one", "MessageDeduplicationId": f"d:{n}"} if fifo else {}
        app.send_task(task, args=[f"ref-{n}"], ignore_result=True, **options)


def test_logical_names_map_to_the_configured_sqs_queues(sqs_app, sqs_settings):
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        assert (
            channel.canonical_queue_name("assessments") == sqs_settings.sqs_queue_prefix + "coach-up-assessments.fifo"
        )
        assert channel.canonical_queue_name(channel.canonical_queue_name("stt")) == channel.canonical_queue_name("stt")


def test_blocking_receive_on_fifo_takes_one_message_of_a_group(sqs_app):
    _publish_two(sqs_app, "assessments.run", fifo=True)
    _publish_two(sqs_app, "stt.noop")
    with sqs_app.connection_for_read() as conn:
        channel = conn.default_channel
        fifo = channel._receive_message("assessments", max_number_of_messages=10, wait_time_seconds=1)
        standard = channel._receive_message("stt", max_number_of_messages=10, wait_time_seconds=1)
    assert len(fifo["Messages"]) == 1
    assert len(standard["Messages"]) == 2


def test_async_receive_on_fifo_takes_one_message_of_a_group(sqs_app):
    from kombu.asynchronous import Hub, set_event_loop

    _publish_two(sqs_app, "assessments.run", fifo=True)
    hub = Hub()
    set_event_loop(hub)
    try:
        with sqs_app.connection_for_read() as conn:
            channel = conn.channel()
            got = []
            # the consumer's own path: _get_async(queue, count) -> ReceiveMessage on the curl client
            channel._get_from_sqs = _capture(channel._get_from_sqs, got)
            channel._get_async("assessments", count=10, callback=lambda *_: None)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                hub.run_once()
    finally:
        set_event_loop(None)
        hub.close()
    assert got == [1]


def _capture(get_from_sqs, counts: list):
    def wrapper(queue_name, queue_url, connection, count=1, callback=None):
        counts.append(count)
        return get_from_sqs(queue_name, queue_url, connection, count=count, callback=callback)

    return wrapper
