"""A job whose message the broker lost is published again by the scheduler, once, and runs once.

kombu's Redis transport pops a message (BRPOP) before it records it as unacknowledged; a Redis restart (or a
consumer killed) in between drops the message while its job row still says `queued`. These tests take a message
out of the broker by hand (exactly what that window leaves behind), or let a stand-in consumer pop it and die,
and check what the sweep (after `COACHUP_REQUEUE_AFTER_S`) and the pop-window watch (within seconds) do about it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import update

from coachup.logs import _CoachupFormatter
from coachup.store.models import Job
from tests.support.outbox import wait_published
from tests.support.wait import wait_until
from workers.brokers.base import BrokerView
from workers.brokers.redis import ORPHAN_AFTER_S, UNACKED_INDEX, priority_lists, redis_snapshot, redis_view
from workers.popwatch import PopWatch
from workers.requeue import requeue_lost_jobs

from .harness import UNACKED, DrillStack
from .record import record


def _age(stack: DrillStack, job_ids: list[str], seconds: float) -> None:
    """Make `job_ids` look as if they were queued `seconds` ago."""
    with stack.store.session() as s, s.begin():
        s.execute(
            update(Job).where(Job.id.in_(job_ids)).values(updated_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def _ids_in(client, key: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(key, 0, -1)]


@pytest.fixture
def stack(tmp_path):
    s = DrillStack(tmp_path, database_url=f"sqlite:///{tmp_path / 'lost.sqlite'}", COACHUP_REQUEUE_AFTER_S="30")
    yield s
    s.close()


@pytest.fixture
def json_log():
    """Every `coachup` log line of this test, formatted as production formats it, parsed."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Keep(logging.INFO)
    handler.setFormatter(_CoachupFormatter("worker", "test"))
    root = logging.getLogger("coachup")
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield lambda event: [r for r in map(json.loads, lines) if r.get("event") == event]
    root.setLevel(old)
    root.removeHandler(handler)


def test_only_the_job_whose_message_is_gone_is_published_again_and_only_once(stack, json_log):
    client = redis.Redis.from_url(stack.redis.url)
    # Given three queued jobs and no worker: `lost` was popped and dropped, `held` sits in the unacked hash
    # (a worker has it), `waiting` is still in the queue, and `lost` and `held` were queued a minute ago
    lost, held, waiting = stack.submit(3, threads=1)
    assert _ids_in(client, "assessments")[::-1] == [lost, held, waiting]
    client.rpop("assessments")
    held_raw = client.rpop("assessments")
    client.hset(UNACKED, "tag-1", json.dumps([json.loads(held_raw), "", "assessments"]))
    _age(stack, [lost, held], 60)
    # When the sweep's requeue step runs (twice, as two sweeps in a row would)
    first = requeue_lost_jobs(stack.celery, stack.store, stack.hasher)
    second = requeue_lost_jobs(stack.celery, stack.store, stack.hasher)
    # Then the lost job alone is back in the queue, once, behind the waiting one, with its request id
    assert (first, second) == (1, 0)
    assert _ids_in(client, "assessments")[::-1] == [waiting, lost]
    requeued = json_log("job_requeued")
    assert len(requeued) == 1 and requeued[0]["kind"] == "assessment" and requeued[0]["idleS"] >= 59
    assert requeued[0]["requestId"] == stack.store.job_record(lost).request_id
    assert stack.store.get_job(lost)["status"] == "queued"
    client.close()


def test_lost_speech_jobs_are_published_again_on_their_own_queues(stack, json_log):
    from coachup.context import RequestContext
    from workers.enqueue import enqueue_speech

    client = redis.Redis.from_url(stack.redis.url)
    # Given an STT and a TTS job whose messages were popped and dropped a minute ago, and a fresh TTS job
    ctx = RequestContext(requestId="req-speech-lost")
    params = {"provider": "mock", "voiceId": "alloy", "format": "mp3", "text": "a sentence to speak"}
    stt = enqueue_speech(
        stack.celery,
        stack.store,
        stack.hasher,
        "stt",
        ctx=ctx,
        session_id="sess-raw-1",
        params={"provider": "mock", "objectKey": "audio/x.wav", "languageHint": "en"},
    )
    tts = enqueue_speech(stack.celery, stack.store, stack.hasher, "tts", ctx=ctx, params=params)
    client.rpop("stt")
    client.rpop("tts")
    _age(stack, [stt, tts], 60)
    fresh = enqueue_speech(stack.celery, stack.store, stack.hasher, "tts", ctx=ctx, params=params)
    assert _ids_in(client, "tts") == [fresh]
    # When the sweep's requeue step runs twice
    assert (
        requeue_lost_jobs(stack.celery, stack.store, stack.hasher),
        requeue_lost_jobs(stack.celery, stack.store, stack.hasher),
    ) == (2, 0)
    # Then each lost job is back once, on its own queue, with the headers its first message had
    assert _ids_in(client, "stt") == [stt]
    assert _ids_in(client, "tts")[::-1] == [fresh, tts]
    stt_message = json.loads(client.lindex("stt", 0))
    assert stt_message["headers"]["task"] == "stt.transcribe"
    assert stt_message["headers"]["requestId"] == "req-speech-lost"
    assert stt_message["headers"]["sessionIdHash"] == stack.hasher.session("sess-raw-1")
    assert "sess-raw-1" not in client.lindex("stt", 0).decode()
    assert sorted((e["kind"], e["queue"]) for e in json_log("job_requeued")) == [("stt", "stt"), ("tts", "tts")]
    client.close()


def test_a_job_queued_after_the_oldest_waiting_message_is_left_alone(stack):
    client = redis.Redis.from_url(stack.redis.url)
    # Given an old waiting message and a job queued later whose message is gone: the queue still has to
    # drain past it before anyone can tell it is lost, so it is not published again
    older, newer = stack.submit(2, threads=1)
    _age(stack, [older], 120)
    _age(stack, [newer], 60)
    client.lrem(
        "assessments",
        1,
        next(r for r in client.lrange("assessments", 0, -1) if json.loads(r)["headers"]["id"] == newer),
    )
    # a stamp two minutes old on the waiting message (the queue's oldest)
    raw = json.loads(client.rpop("assessments"))
    raw["headers"]["enqueuedAtMs"] -= 120_000
    client.rpush("assessments", json.dumps(raw))
    assert requeue_lost_jobs(stack.celery, stack.store, stack.hasher) == 0
    # Once the queue is drained (the waiting message taken and acked), the newer job is published again
    client.rpop("assessments")
    stack.store.mark_job(older, "done")
    assert requeue_lost_jobs(stack.celery, stack.store, stack.hasher) == 1
    assert _ids_in(client, "assessments") == [newer]
    client.close()


def test_the_broker_view_rule():
    now = datetime.now(UTC)
    ms = now.timestamp() * 1000
    # Redis: held ids are kept; otherwise lost only when queued well before the oldest waiting message
    view = BrokerView(held_ids=frozenset({"a"}), oldest_waiting_ms=int(ms), exact=True)
    assert view.may_hold("a", now - timedelta(hours=1))
    assert not view.may_hold("b", now - timedelta(seconds=60))
    assert view.may_hold("b", now - timedelta(seconds=2))  # within the clock margin
    assert not BrokerView(exact=True).may_hold("b", now)  # empty queue, not held: gone
    # SQS: only an empty queue (nothing visible, nothing in flight) proves a message is gone
    assert BrokerView(empty=False).may_hold("b", now - timedelta(hours=1))
    assert not BrokerView(empty=True).may_hold("b", now)


def test_redis_view_reads_priority_lists_and_skips_garbage(stack):
    client = redis.Redis.from_url(stack.redis.url)
    client.lpush("assessments\x06\x163", json.dumps({"headers": {"id": "p", "enqueuedAtMs": 1000}}))
    client.lpush("assessments", json.dumps({"headers": {"id": "q", "enqueuedAtMs": 5000}}))
    client.hset(UNACKED, "t1", "not json")
    client.hset(UNACKED, "t2", json.dumps([{"headers": {"id": "h"}}, "", "assessments"]))
    view = redis_view(client, "assessments")
    assert view.oldest_waiting_ms == 1000 and view.held_ids == {"h"} and view.exact
    client.close()


@pytest.mark.drill
def test_the_scheduler_brings_back_a_message_lost_in_the_pop_window(tmp_path):
    # Given a job whose message was popped and dropped (no worker ever saw it)
    stack = DrillStack(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'drill.sqlite'}",
        COACHUP_REQUEUE_AFTER_S="3",
        COACHUP_IDLE_SWEEP_S="1",
    )
    try:
        [job] = stack.submit(1)
        client = redis.Redis.from_url(stack.redis.url)
        client.rpop("assessments")
        client.close()
        # When a worker and the scheduler run
        stack.worker("lost1", concurrency=1)
        stack.beat()
        # Then the sweep publishes it again and the worker finishes it, with one result
        wait_until(lambda: stack.tally([job])["done"] == 1, timeout=60, interval=0.2, what="the lost job to finish")
        t = stack.tally([job])
        wait_until(lambda: stack.requeued() == 1, timeout=10, what="one job_requeued event")
        o = stack.observed([job])
        # the republished message is the only one a worker took: one run, completed
        assert (t["results"], o["runs"], o["completedRuns"]) == (1, 1, 1), (t, o)
        record("fault", "3b. message lost between pop and unacked", **t, **o, requeued=stack.requeued())
    finally:
        stack.close()


def test_the_pop_window_watch_publishes_a_lost_message_on_its_second_look_only(stack, json_log):
    client = redis.Redis.from_url(stack.redis.url)
    # Given three published jobs, just queued: `lost` popped and dropped, `held` in the unacked hash, `waiting` queued
    lost, held, waiting = stack.submit(3, threads=1)
    wait_published(stack.store)
    client.rpop("assessments")
    held_raw = client.rpop("assessments")
    client.hset(UNACKED, "tag-1", json.dumps([json.loads(held_raw), "", "assessments"]))
    watch = PopWatch(stack.celery, period_s=0)  # looks only when called
    # When the watch looks once: nothing is published (one look can catch a healthy message mid-pop)
    assert watch.look() == 0
    # and again: the lost job alone is published, once, and a third look finds it waiting
    assert (watch.look(), watch.look()) == (1, 0)
    assert _ids_in(client, "assessments")[::-1] == [waiting, lost]
    [event] = json_log("job_requeued")
    assert event["reason"] == "pop_window" and event["idleS"] < 60
    # A suspect whose row changed between two looks (a worker started it) is not published
    client.delete("assessments")
    first = watch.look()
    stack.store.mark_job(waiting, "running")
    stack.store.mark_job(lost, "queued")  # touched: a new `updated_at`, so a new suspect
    assert (first, watch.look()) == (0, 0)
    client.close()


def test_redis_snapshot_lists_every_waiting_message_or_none_past_its_limit(stack):
    client = redis.Redis.from_url(stack.redis.url)
    for i in range(3):
        client.lpush("assessments", json.dumps({"headers": {"id": f"w{i}", "enqueuedAtMs": 1000 + i}}))
    client.hset(UNACKED, "t2", json.dumps([{"headers": {"id": "h"}}, "", "assessments"]))
    view = redis_snapshot(client, "assessments")
    assert (view.waiting_ids, view.held_ids, view.oldest_waiting_ms) == ({"w0", "w1", "w2"}, {"h"}, 1000)
    assert view.may_hold("w1", datetime.now(UTC)) and not view.may_hold("gone", datetime.now(UTC) - timedelta(days=1))
    assert redis_snapshot(client, "assessments", scan_max=2).waiting_ids is None  # too long to list: the sweep's rule
    client.close()


def test_an_unacked_message_its_consumer_dropped_is_published_again_and_one_it_may_hold_is_not(stack, json_log):
    """A consumer whose broker connection broke drops the messages it took, and they stay in `unacked` until
    kombu's visibility timeout (an hour). The watch counts such an entry as held only while its consumer could
    still be about to start it: delivered under `ORPHAN_AFTER_S` ago, or its ETA (a countdown) not yet
    `ORPHAN_AFTER_S` past."""
    client = redis.Redis.from_url(stack.redis.url)
    dropped, fresh, waiting_eta, just_due, undated = jobs = stack.submit(5, threads=1)
    wait_published(stack.store)
    raws = {json.loads(raw)["headers"]["id"]: json.loads(raw) for raw in client.lrange("assessments", 0, -1)}
    client.delete("assessments")
    now = float(client.time()[0])
    old = now - ORPHAN_AFTER_S - 5
    eta = datetime.fromtimestamp(now + 30, UTC).isoformat()
    just_past = datetime.fromtimestamp(now - 10, UTC).isoformat()
    for tag, job_id, delivered_at, headers in (
        ("t-dropped", dropped, old, {}),  # taken 65 s ago and never started: its consumer dropped it
        ("t-fresh", fresh, now - 1, {}),  # taken a second ago: its consumer is about to start it
        ("t-eta", waiting_eta, old, {"eta": eta}),  # taken long ago to run in 30 s (a retry's countdown)
        ("t-due", just_due, old, {"eta": just_past}),  # its countdown ended 10 s ago: the worker starts it now
        ("t-undated", undated, None, {}),  # no delivery time recorded: held
    ):
        message = raws[job_id]
        message["headers"].update(headers)
        client.hset(UNACKED, tag, json.dumps([message, "", "assessments"]))
        if delivered_at is not None:
            client.zadd(UNACKED_INDEX, {tag: delivered_at})
    view = redis_snapshot(client, "assessments")
    assert view.held_ids == {fresh, waiting_eta, just_due, undated}
    # the watch publishes the dropped one again on its second look, and only it
    watch = PopWatch(stack.celery, period_s=0)
    assert (watch.look(), watch.look(), watch.look()) == (0, 1, 0)
    assert _ids_in(client, "assessments") == [dropped]
    # and its stale entry is gone from `unacked`, where it counted as in flight until the visibility timeout;
    # the others stay
    assert {t.decode() for t in client.hkeys(UNACKED)} == {"t-fresh", "t-eta", "t-due", "t-undated"}
    assert client.zscore(UNACKED_INDEX, "t-dropped") is None
    [event] = json_log("job_requeued")
    assert event["reason"] == "pop_window"
    assert all(stack.store.get_job(j)["status"] == "queued" for j in jobs)
    client.close()


POPPER = """
import sys, time, redis
client = redis.Redis.from_url(sys.argv[1], client_name="popper")
client.brpop(sys.argv[2:], 0)
time.sleep(3600)
"""


def _popper_blocked(client) -> bool:
    return any(
        c.get("name") == "popper" and c.get("cmd") == "brpop" and "b" in c.get("flags", "")
        for c in client.client_list()
    )


@pytest.mark.drill
def test_a_message_popped_by_a_consumer_that_dies_runs_within_seconds(tmp_path):
    # Default timings: the sweep would republish the job only after COACHUP_REQUEUE_AFTER_S (300 s)
    stack = DrillStack(tmp_path, database_url=f"sqlite:///{tmp_path / 'popped.sqlite'}")
    client = redis.Redis.from_url(stack.redis.url)
    popper = subprocess.Popen([sys.executable, "-c", POPPER, stack.redis.url, *priority_lists("assessments")])
    try:
        # Given a consumer of `assessments` with its BRPOP pending, SIGSTOPped (Redis serves it first: it has
        # waited longest), a real worker and the scheduler
        wait_until(lambda: _popper_blocked(client), timeout=15, what="the stand-in consumer's BRPOP to be pending")
        os.kill(popper.pid, signal.SIGSTOP)
        stack.worker("pw", concurrency=1)
        stack.beat()
        # When a job is published, the stopped consumer pops it, and is SIGKILLed before recording it
        [job] = stack.submit(1, threads=1)
        wait_until(lambda: not _popper_blocked(client), timeout=15, what="the message to be popped")
        os.kill(popper.pid, signal.SIGKILL)
        popper.wait(timeout=10)
        assert client.hlen(UNACKED) == 0 and not _ids_in(client, "assessments")  # gone from the broker
        # Then the job runs, within seconds of its first publish (the system's own timestamps)
        wait_until(
            lambda: stack.tally([job])["done"] == 1,
            timeout=120,
            interval=0.2,
            what=f"the popped job to finish ({stack.broker_state([job])})",
        )
        row = stack.store.job_record(job)
        recovered_s = (row.updated_at - row.published_at).total_seconds()
        # the watch's period is 2 s and it needs two looks; 30 s allows a loaded 2-core machine (the sweep: 300 s)
        assert 0 < recovered_s < 30, recovered_s
        wait_until(lambda: stack.requeued() == 1, timeout=10, what="one job_requeued event")
        [event] = [e for w in stack.workers for e in w.events("job_requeued")]
        o = stack.observed([job])
        assert (event["reason"], o["runs"], o["completedRuns"]) == ("pop_window", 1, 1), (event, o)
        record(
            "fault",
            "3c. consumer SIGKILLed between its BRPOP and the unacked write (pop-window watch)",
            **stack.tally([job]),
            **o,
            requeued=stack.requeued(),
            publishedToDoneS=round(recovered_s, 1),
        )
    finally:
        if popper.poll() is None:
            popper.kill()
            popper.wait()
        client.close()
        stack.close()
