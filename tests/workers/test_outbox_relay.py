"""The outbox relay in-process (`workers.relay`, `workers.publish`), on the embedded broker and SQLite: a pass
publishes each committed row once with its stored request context and marks it; a refusing broker leaves the
rows for their retry time; `notify` and the API's relay thread publish what a request committed."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import timedelta

import pytest

from coachup.store import outbox
from coachup.store.models import utcnow
from tests.support.broker import waiting_envelopes
from tests.support.wait import wait_until

TRACE = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    return create_celery(offline_settings)


@pytest.fixture
def down(offline_settings):
    """An app whose broker is a closed port (its store is the same SQLite file)."""
    from workers import create_celery

    return create_celery(offline_settings.replace(broker_url="redis://127.0.0.1:9/0"))


def _job(app, n: int, **fields) -> str:
    fields.setdefault("request_id", f"req-{n}")
    fields.setdefault("context", {"requestId": f"req-{n}", "traceparent": TRACE})
    return app.coachup.store.create_job(
        "assessment", session_id=f"s{n}", group_id=f"g{n}", params={"trackedSkills": []}, **fields
    )


def _sample(app, name: str, labels: dict | None = None) -> float:
    from workers.metrics_host import metrics_for

    return metrics_for(app).registry.get_sample_value(name, labels or {}) or 0.0


def test_a_pass_publishes_each_row_once_with_its_context_and_marks_it(app):
    from workers.relay import RelayPass, relay_pass

    rt = app.coachup
    ids = [_job(app, n) for n in range(3)]
    before = int(time.time() * 1000)
    assert relay_pass(app, rt.store, rt.hasher) == RelayPass(published=3, deferred=0, broker_down=False)
    after = int(time.time() * 1000)

    envelopes = waiting_envelopes(app, ["assessments"])
    assert [e["headers"]["id"] for e in envelopes] == ids  # oldest first
    for n, envelope in enumerate(envelopes):
        headers = envelope["headers"]
        assert headers["task"] == "assessments.run" and headers["ignore_result"] is True
        assert envelope["properties"]["delivery_info"]["routing_key"] == "assessments"
        assert (headers["requestId"], headers["traceparent"]) == (f"req-{n}", TRACE)
        assert (headers["sessionIdHash"], headers["groupId"]) == (rt.hasher.session(f"s{n}"), rt.hasher.group(f"g{n}"))
        assert before <= headers["enqueuedAtMs"] <= after
        assert json.loads(base64.b64decode(envelope["body"]))[0] == [ids[n]]  # the task's one argument: its job id
    assert not any(outbox.unpublished(rt.store, job_id) for job_id in ids)
    assert relay_pass(app, rt.store, rt.hasher) == RelayPass()  # nothing left: nothing sent twice
    assert len(waiting_envelopes(app, ["assessments"])) == 3
    assert _sample(app, "coachup_outbox_publishes_total", {"status": "ok"}) == 3
    assert _sample(app, "coachup_outbox_publish_lag_seconds_count") == 3
    assert _sample(app, "coachup_outbox_publish_lag_seconds_sum") >= 0


def test_a_pass_claims_publishes_and_marks_on_one_pooled_connection(app, down):
    # one checkout per pass (one ping at most), not one per statement: the claim, the mark, and on a refusal the
    # release all run on the pass's autocommit connection
    from sqlalchemy import event

    from workers.relay import relay_pass

    checkouts: list[object] = []
    for a in (app, down):
        event.listen(a.coachup.store.engine, "checkout", lambda *_a: checkouts.append(1))
    rt = app.coachup
    [_job(app, n) for n in range(3)]
    checkouts.clear()
    assert relay_pass(app, rt.store, rt.hasher).published == 3 and len(checkouts) == 1
    [_job(app, n) for n in range(3, 5)]
    checkouts.clear()
    assert relay_pass(down, down.coachup.store, down.coachup.hasher).deferred == 2 and len(checkouts) == 1


def test_a_pass_limited_to_some_jobs_publishes_only_those_and_at_most_the_limit(app):
    from workers.relay import relay_pass

    rt = app.coachup
    ids = [_job(app, n) for n in range(4)]
    assert relay_pass(app, rt.store, rt.hasher, job_ids=[ids[2]]).published == 1
    assert [e["headers"]["id"] for e in waiting_envelopes(app, ["assessments"])] == [ids[2]]
    assert relay_pass(app, rt.store, rt.hasher, limit=2).published == 2
    assert [e["headers"]["id"] for e in waiting_envelopes(app, ["assessments"])] == [ids[2], ids[0], ids[1]]
    assert outbox.backlog(rt.store)[0] == 1


def test_the_rows_request_id_wins_and_a_row_without_one_keeps_its_contexts(app):
    from workers.relay import relay_pass

    rt = app.coachup
    named = _job(app, 1, request_id="req-row", context={"requestId": "req-ctx", "traceparent": TRACE})
    unnamed = _job(app, 2, request_id=None, context={"requestId": "req-ctx2"})
    relay_pass(app, rt.store, rt.hasher)
    headers = {e["headers"]["id"]: e["headers"] for e in waiting_envelopes(app, ["assessments"])}
    assert headers[named]["requestId"] == "req-row"
    assert headers[unnamed]["requestId"] == "req-ctx2" and "traceparent" not in headers[unnamed]


def test_a_pass_told_to_stop_publishes_no_more_and_leaves_the_rest_to_the_next_relay_at_once(app):
    from workers.relay import RelayPass, relay_pass

    rt = app.coachup
    ids = [_job(app, n) for n in range(3)]
    answers = iter([False, True])  # stop is asked for after the first publish
    result = relay_pass(app, rt.store, rt.hasher, stopping=lambda: next(answers, True))
    assert result == RelayPass(published=1, deferred=2, broker_down=False)
    assert [e["headers"]["id"] for e in waiting_envelopes(app, ["assessments"])] == ids[:1]
    assert sorted(r.id for r in outbox.claim(rt.store, lease_s=60)) == sorted(ids[1:])  # released, not leased


def test_a_refusal_mid_batch_marks_what_went_out_and_defers_the_rest(app, monkeypatch, caplog):
    from workers import relay
    from workers.publish import BrokerUnavailable

    rt = app.coachup
    ids = [_job(app, n) for n in range(3)]
    publish_row, sent = relay.publish_row, []

    def refuse_the_second(*args):
        if len(sent) == 1:
            raise BrokerUnavailable("ConnectionError")
        publish_row(*args)
        sent.append(args[-1].id)

    monkeypatch.setattr(relay, "publish_row", refuse_the_second)
    with caplog.at_level(logging.WARNING, logger="coachup.relay"):
        result = relay.relay_pass(app, rt.store, rt.hasher)
    assert result == relay.RelayPass(published=1, deferred=2, broker_down=True)
    assert not outbox.unpublished(rt.store, ids[0]) and outbox.unpublished(rt.store, ids[1])
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "outbox_publish_deferred"]
    assert record.pending == 2
    assert outbox.claim(rt.store, lease_s=60) == []  # the rest wait for their retry time


def test_a_refusing_broker_defers_the_whole_batch_until_its_retry_time(down, caplog):
    from workers.relay import RelayPass, relay_pass

    rt = down.coachup
    settings = rt.settings
    assert settings.outbox_retry_s + 1 < settings.outbox_lease_s  # a released row is claimable before its lease ends
    ids = [_job(down, n) for n in range(3)]
    # (under a multiprocess directory the counters are the pytest process's, and a label's child reads the
    # process's total when it is first made: make both, then read what this pass added)
    from workers.metrics_host import metrics_for

    for status in ("error", "ok"):
        metrics_for(down).outbox_publishes_total.labels(status)
    errors, oks = (_sample(down, "coachup_outbox_publishes_total", {"status": s}) for s in ("error", "ok"))
    with caplog.at_level(logging.WARNING, logger="coachup.relay"):
        assert relay_pass(down, rt.store, rt.hasher) == RelayPass(published=0, deferred=3, broker_down=True)

    assert all(outbox.unpublished(rt.store, job_id) for job_id in ids)
    assert outbox.claim(rt.store, lease_s=60) == []  # not before the retry time ...
    retry = utcnow() + timedelta(seconds=settings.outbox_retry_s + 1)
    assert [r.id for r in outbox.claim(rt.store, lease_s=60, now=retry)] == ids  # ... every row after it
    assert _sample(down, "coachup_outbox_publishes_total", {"status": "error"}) - errors == 1
    assert _sample(down, "coachup_outbox_publishes_total", {"status": "ok"}) - oks == 0
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "outbox_publish_deferred"]
    assert record.levelno == logging.WARNING and record.pending == 3
    assert record.reason in ("OperationalError", "ConnectionError", "ConnectionRefusedError")


def test_publish_raises_broker_unavailable_naming_the_error_class_only(down):
    from workers.publish import BrokerUnavailable, publish

    with pytest.raises(BrokerUnavailable) as caught:
        publish(down, "assessments.run", task_id="t1", args=["t1"], headers={"requestId": "r1"})
    assert str(caught.value) in ("OperationalError", "ConnectionError", "ConnectionRefusedError")
    assert caught.value.__cause__ is not None


def test_publish_keeps_the_callers_headers_and_options(app):
    from workers.publish import publish

    headers = {"requestId": "r1"}
    publish(app, "assessments.run", task_id="t1", args=["t1"], headers=headers, ignore_result=False, priority=3)
    [envelope] = waiting_envelopes(app, ["assessments"])
    assert headers == {"requestId": "r1"}  # the caller's dict is not changed
    assert envelope["headers"]["ignore_result"] is False and envelope["properties"]["priority"] == 3
    assert envelope["headers"]["requestId"] == "r1" and envelope["headers"]["id"] == "t1"


def test_notify_without_a_relay_thread_publishes_the_named_jobs_inline(app):
    from workers.relay import notify

    rt = app.coachup
    first, second = _job(app, 1), _job(app, 2)
    notify(app, rt.store, rt.hasher, [])  # nothing committed: nothing sent
    assert waiting_envelopes(app, ["assessments"]) == []
    notify(app, rt.store, rt.hasher, [second])
    assert [e["headers"]["id"] for e in waiting_envelopes(app, ["assessments"])] == [second]
    assert outbox.unpublished(rt.store, first)


def test_notify_never_raises_when_the_store_is_down(app, caplog):
    from coachup.store import create_store
    from workers.relay import notify

    store_down = create_store("postgresql+psycopg://coachup@127.0.0.1:9/coachup", init_schema=False)
    with caplog.at_level(logging.WARNING, logger="coachup.relay"):
        notify(app, store_down, app.coachup.hasher, ["job-1"])
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "outbox_relay_error"]
    assert record.levelno == logging.WARNING and record.error == {"type": "OperationalError"}
    store_down.engine.dispose()


def test_the_relay_thread_publishes_what_a_request_committed_and_reports_the_backlog(app):
    from coachup.metrics import Metrics
    from workers.relay import install_relay, notify

    rt = app.coachup
    metrics = Metrics()
    relay = install_relay(app, rt.store, rt.hasher, metrics)
    assert app.outbox_relay is relay and relay.passes == 0
    # the counter's samples are the whole multiprocess directory's (other tests' relays and workers count there
    # too): this relay's publish must add to it; the row and the envelope above say it published exactly one
    published_before = metrics.registry.get_sample_value("coachup_outbox_publishes_total", {"status": "ok"}) or 0
    job_id = _job(app, 1)
    notify(app, rt.store, rt.hasher, [job_id])  # wakes the thread; never publishes on the caller's thread
    wait_until(lambda: not outbox.unpublished(rt.store, job_id), timeout=20, what="the relay thread to publish")
    wait_until(lambda: relay.passes >= 1, timeout=20, what="the pass to complete")
    assert [e["headers"]["id"] for e in waiting_envelopes(app, ["assessments"])] == [job_id]
    value = metrics.registry.get_sample_value
    wait_until(lambda: value("coachup_outbox_pending_jobs", {}) == 0, timeout=20, what="the backlog gauge")
    assert value("coachup_outbox_publishes_total", {"status": "ok"}) - published_before >= 1
    thread = relay._thread
    relay.wake()  # a second wake reuses the one thread
    assert relay._thread is thread and thread is not None and thread.is_alive() and thread.daemon
    assert thread.name == "coachup-outbox-relay"


def test_a_speech_job_is_published_with_the_provider_its_row_names(app):
    from workers.relay import relay_pass

    rt = app.coachup
    job_id = rt.store.create_job("stt", request_id="req-s", params={"provider": "whisper-local"})
    assert relay_pass(app, rt.store, rt.hasher).published == 1
    [envelope] = waiting_envelopes(app, ["stt"])
    assert (envelope["headers"]["id"], envelope["headers"]["provider"]) == (job_id, "whisper-local")
