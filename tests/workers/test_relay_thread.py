"""The API's outbox relay thread (`workers.relay.OutboxRelay`) in-process, on a private Redis and a SQLite store:
one thread per process however many wake it (a new one in a forked child, and after a stop), how long it sleeps
after each pass (backoff after store errors and broker refusals, reset by a publish; at once after a full batch;
until woken when nothing is owed), the backlog count at most once a second, and `stop` (joins the pass under
way, which releases the rows it claimed). What a relay reported is read from the calls it made on its own
`Metrics` (`CountedMetrics`), not from the counters: those are the process's (every relay in the pytest process
counts into one multiprocess file).

How long the thread sleeps is read from the wait it is blocked in (`_settle`): deterministic on a loaded machine,
where timing its passes is not. Each pass is started by a `wake`; the retry interval (10 s) is longer than any
test here, so no pass starts on its own."""

from __future__ import annotations

import logging
import os
import selectors
import sqlite3
import sys
import threading
import time
import traceback

import pytest

from coachup.metrics import Metrics
from coachup.settings import load_settings
from coachup.store import create_store, outbox
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until

RETRY_S = 10.0
_EVENT_WAIT = threading.Event.wait.__code__


@pytest.fixture
def redis():
    server = PrivateRedis()
    yield server
    server.close()


@pytest.fixture
def app(tmp_path, redis):
    from workers import create_celery

    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_BROKER_URL": redis.url,
        "COACHUP_OUTBOX_RETRY_S": str(RETRY_S),
    }
    app = create_celery(load_settings(env))
    yield app
    app.coachup.store.engine.dispose()


@pytest.fixture
def relay(app):
    from workers.relay import install_relay

    rt = app.coachup
    return install_relay(app, rt.store, rt.hasher, CountedMetrics())


@pytest.fixture
def broken_store(tmp_path):
    """A store whose every query fails (its SQLite file is in a directory that does not exist)."""
    store = create_store(f"sqlite:///{tmp_path / 'missing' / 'store.sqlite'}", init_schema=False)
    yield store
    store.engine.dispose()


def _job(app, n: int = 0) -> str:
    return app.coachup.store.create_job("assessment", session_id=f"s{n}", request_id=f"req-{n}", params={})


def _held_elsewhere(app, n: int = 0) -> str:
    """A job row another relay has claimed (pending, not claimable by this one)."""
    job_id = _job(app, n)
    assert [r.id for r in outbox.claim(app.coachup.store, lease_s=60, job_ids=[job_id])] == [job_id]
    return job_id


def _asleep(relay) -> tuple[str, float | None] | None:
    """("asleep", timeout) while the relay thread is blocked on its wake event and no wake is pending."""
    thread, event = relay._thread, relay._event
    if thread is None or thread.ident is None or event.is_set():
        return None
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code is _EVENT_WAIT and frame.f_locals.get("self") is event:
            timeout = frame.f_locals.get("timeout")
            return None if event.is_set() else ("asleep", timeout)
        frame = frame.f_back
    return None


def _settle(relay, timeout: float = 30.0) -> float | None:
    """Wait for the pass a `wake` started to end; how long the thread then sleeps (None: until woken).
    A sleep of 0 (a full batch: the next pass at once) is part of the pass under way."""

    def probe():
        state = _asleep(relay)
        return state if state is not None and state[1] != 0.0 else None

    return wait_until(probe, timeout=timeout, interval=0.005, what="the relay's pass to end")[1]


def _wake(relay) -> float | None:
    relay.wake()
    return _settle(relay)


class CountedMetrics(Metrics):
    """The API's metrics, remembering each publish and backlog count the relay reports. Their values cannot be
    read back per relay: under a multiprocess metrics directory every relay of the pytest process writes one
    file."""

    def __init__(self) -> None:
        super().__init__()
        self.backlogs: list[tuple[int, float]] = []
        self.publishes: list[str] = []

    def record_outbox_publish(self, status: str, lag_s: float | None) -> None:
        self.publishes.append(status)
        super().record_outbox_publish(status, lag_s)

    def set_outbox_backlog(self, pending: int, oldest_age_s: float) -> None:
        self.backlogs.append((pending, oldest_age_s))
        super().set_outbox_backlog(pending, oldest_age_s)


def _pending(relay) -> int | None:
    """The backlog the relay last counted (None: never counted)."""
    return relay.metrics.backlogs[-1][0] if relay.metrics.backlogs else None


def _relay_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "coachup-outbox-relay"}


def _events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_one_thread_however_many_callers_wake_it_at_once(relay):
    from workers.relay import relays

    assert relay in relays() and not relay.running and relay.passes == 0
    before = _relay_threads()
    barrier = threading.Barrier(8)

    def caller():
        barrier.wait()
        relay.wake()

    callers = [threading.Thread(target=caller) for _ in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(10)
    _settle(relay)  # (every caller's wake came before this)
    thread = relay._thread
    assert relay.running and _relay_threads() - before == {thread}
    assert thread is not None and thread.daemon and thread.name == "coachup-outbox-relay"
    passes = relay.passes
    assert passes >= 1  # the eight wakes coalesce into one pass or a few
    _wake(relay)
    assert relay._thread is thread and _relay_threads() - before == {thread}
    assert relay.passes == passes + 1


def test_wakes_soon_after_a_pass_wait_out_the_window_and_are_published_in_one_pass(app, relay, redis):
    relay.coalesce_s = 3.0  # (10 ms in production; long here so the rows below all arrive inside it)
    first = _job(app, 0)
    woke = time.monotonic()
    assert _wake(relay) is None
    assert time.monotonic() - woke < relay.coalesce_s  # an idle relay's first wake is not held
    assert relay.passes == 1 and relay.metrics.publishes == ["ok"] and not outbox.unpublished(app.coachup.store, first)

    later = []
    for n in range(1, 4):  # rows committed 50 ms apart, each waking the relay, as requests under load do
        later.append(_job(app, n))
        relay.wake()
        if n < 3:
            time.sleep(0.05)  # (the pace of the arrivals, not a wait for the relay)
    _settle(relay)
    assert time.monotonic() - woke >= relay.coalesce_s  # the next pass waited out the window
    assert relay.passes == 2  # one pass published all three
    assert relay.metrics.publishes == ["ok"] * 4 and redis.client().llen("assessments") == 4
    assert not any(outbox.unpublished(app.coachup.store, j) for j in later)


def test_a_pass_that_leaves_rows_pending_counts_them_and_looks_again_after_the_retry_interval(app, relay, redis):
    held = _held_elsewhere(app, 1)
    fresh = _job(app, 2)
    assert _wake(relay) == RETRY_S  # published one, another relay holds one: look again later
    assert relay.passes == 1
    assert not outbox.unpublished(app.coachup.store, fresh) and outbox.unpublished(app.coachup.store, held)
    assert redis.client().llen("assessments") == 1 and relay.metrics.publishes == ["ok"]
    assert relay.metrics.backlogs[-1][0] == 1 and relay.metrics.backlogs[-1][1] > 0
    assert _wake(relay) == RETRY_S  # nothing published, one row still owed: the same pace
    assert relay.passes == 2


def test_store_errors_back_off_doubling_to_30_s_logged_once_until_a_pass_succeeds(app, relay, broken_store, caplog):
    healthy = relay.store
    relay.store = broken_store
    with caplog.at_level(logging.INFO, logger="coachup.relay"):
        assert [_wake(relay) for _ in range(4)] == [RETRY_S, 2 * RETRY_S, 30.0, 30.0]
        assert relay.passes == 0  # a pass the store failed is not a pass
        [record] = _events(caplog, "outbox_relay_error")  # one line per kind of failure, not one per try
        assert record.levelno == logging.ERROR and record.error == {"type": "OperationalError"}

        relay.store = healthy
        assert _wake(relay) is None  # the store is back and nothing is owed: sleep until woken
        assert relay.passes == 1 and _pending(relay) == 0

        relay.store = broken_store
        assert _wake(relay) == RETRY_S  # the backoff starts again from the retry interval ...
        assert len(_events(caplog, "outbox_relay_error")) == 2  # ... and the failure is logged again


def test_rows_held_by_another_relay_keep_the_pace_the_errors_set(app, relay, broken_store):
    healthy = relay.store
    relay.store = broken_store
    assert [_wake(relay) for _ in range(2)] == [RETRY_S, 2 * RETRY_S]
    relay.store = healthy
    _held_elsewhere(app)
    assert _wake(relay) == 2 * RETRY_S  # nothing published, a row still owed: no faster than before
    assert _pending(relay) == 1


def test_broker_refusals_back_off_doubling_to_30_s_and_a_publish_resets_it(app, relay, redis, caplog):
    store = app.coachup.store
    redis.stop()
    refused = []
    with caplog.at_level(logging.WARNING, logger="coachup.relay"):
        delays = []
        for n in range(4):
            refused.append(_job(app, n))  # a refused row waits for its retry time: each pass gets a new one
            delays.append(_wake(relay))
        assert delays == [RETRY_S, 2 * RETRY_S, 30.0, 30.0]
        assert len(_events(caplog, "outbox_publish_deferred")) == 4
    assert relay.passes == 4 and relay.metrics.publishes == ["error"] * 4 and _pending(relay) == 4
    assert all(outbox.unpublished(store, job_id) for job_id in refused)

    redis.start()
    sent = _job(app, 9)
    assert _wake(relay) == RETRY_S  # published: back to the retry interval (the refused rows wait for theirs)
    assert not outbox.unpublished(store, sent) and redis.client().llen("assessments") == 1
    assert relay.metrics.publishes == ["error"] * 4 + ["ok"]


def test_a_backlog_count_that_fails_after_a_pass_reports_one_row_owed_and_looks_again(app, relay, monkeypatch):
    """The pass was served but the count failed (the store went away in between): the relay cannot tell the
    backlog, so it reports one row owed, with no age, and looks again after the retry interval."""

    def count_fails(store):
        raise OSError("the store went away")

    monkeypatch.setattr(outbox, "backlog", count_fails)
    assert _wake(relay) == RETRY_S
    assert relay.passes == 1 and relay.metrics.backlogs == [(1, 0.0)]


def test_a_full_batch_is_followed_by_the_next_pass_at_once(app, relay, redis):
    from sqlalchemy import insert

    from coachup.store.models import Job, utcnow

    store = app.coachup.store
    assert _wake(relay) is None  # a count: the full batch below comes within a second of it (on most machines)
    now = utcnow()
    rows = [{"id": f"job-{n:03d}", "kind": "assessment", "status": "queued", "created_at": now} for n in range(150)]
    with store.engine.begin() as conn:
        conn.execute(insert(Job), rows)
    assert outbox.backlog(store)[0] == 150
    relay.wake()
    _settle(relay)
    # 100, then at once the other 50 (not after the retry interval); a full batch always counts the backlog
    assert relay.passes == 3
    assert outbox.backlog(store)[0] == 0 and redis.client().llen("assessments") == 150


def test_a_pass_within_a_second_of_the_last_count_does_not_count_again(app, relay):
    """Under load every request wakes a pass: the backlog is counted (one more query) at most once a second.
    The relay's clock is the test's, stepped by hand: the window is exact however slow the machine runs."""
    clock = [1000.0]
    relay.clock = lambda: clock[0]
    assert _wake(relay) is None  # a first pass always counts: nothing owed
    assert relay.metrics.backlogs == [(0, 0.0)]
    _held_elsewhere(app, 1)
    _job(app, 2)
    clock[0] = 1000.5
    assert _wake(relay) == RETRY_S  # published one: look again after the retry interval ...
    assert len(relay.metrics.backlogs) == 1  # ... without counting the row now held elsewhere
    clock[0] = 1001.0  # a second since the count, to the tick
    assert _wake(relay) == RETRY_S  # nothing published, one row still owed
    assert len(relay.metrics.backlogs) == 2
    assert _pending(relay) == 1  # counted again


def test_stop_waits_for_the_pass_under_way_which_releases_the_rows_it_claimed(app, relay, redis, caplog):
    store = app.coachup.store
    assert _wake(relay) is None
    ids = [_job(app, n) for n in range(2)]
    caplog.set_level(logging.INFO, logger="coachup.relay")
    lock = sqlite3.connect(store.engine.url.database, timeout=30)
    lock.execute("BEGIN IMMEDIATE")  # the store's writes wait (its busy timeout is 30 s): the pass is held
    try:
        relay.wake()
        wait_until(
            lambda: not relay._event.is_set() and _asleep(relay) is None,
            timeout=10,
            interval=0.005,
            what="the relay's pass to start",
        )
        assert relay.stop(timeout=0.2) is False  # the pass outlives the timeout
        assert relay.running
    finally:
        lock.rollback()
        lock.close()
    assert relay.stop(timeout=20) is True
    assert not relay.running and relay._thread is not None and not relay._thread.is_alive()
    [record] = _events(caplog, "outbox_relay_stopped")
    assert record.levelno == logging.INFO and record.passes == 2 == relay.passes
    # nothing was published, and both rows are claimable at once (not held until their lease ends)
    assert redis.client().llen("assessments") == 0
    assert sorted(r.id for r in outbox.claim(store, lease_s=60)) == sorted(ids)


def test_stop_before_a_start_and_a_wake_after_a_stop_starts_a_new_thread(app, relay, redis):
    store = app.coachup.store
    assert relay.stop() is True and not relay.running  # never started: nothing to wait for
    first = _job(app, 1)
    assert _wake(relay) is None
    assert not outbox.unpublished(store, first)
    old = relay._thread
    assert relay.stop(timeout=10) is True  # asleep until woken: the stop wakes it
    assert old is not None and not old.is_alive() and not relay.running

    second = _job(app, 2)
    relay.wake()
    wait_until(lambda: not outbox.unpublished(store, second), timeout=20, what="the new thread to publish")
    assert relay.running and relay._thread is not old
    assert redis.client().llen("assessments") == 2


def test_a_stop_called_on_the_relay_thread_does_not_wait_for_itself(relay, broken_store):
    """Code run by the thread (here a log handler, as a shutdown hook could) may stop its own relay."""
    relay.store = broken_store
    outcome: list[object] = []

    class StopOnError(logging.Handler):
        def emit(self, record):
            if getattr(record, "event", None) == "outbox_relay_error" and not outcome:
                try:
                    outcome.append(relay.stop(timeout=5))
                except Exception as exc:
                    outcome.append(exc)

    handler = StopOnError(logging.ERROR)
    logger = logging.getLogger("coachup.relay")
    logger.addHandler(handler)
    try:
        relay.wake()
        wait_until(lambda: outcome and not relay.running, timeout=20, what="the thread to stop itself")
    finally:
        logger.removeHandler(handler)
    assert outcome == [False]  # not ended yet (it is the caller), and no join on itself
    assert relay._thread is not None and not relay._thread.is_alive()


def test_a_forked_child_starts_its_own_relay_thread(app, relay, redis):
    """A process forked after the relay started (a pre-forking server): the parent's thread is not the child's;
    the child's first wake starts one of its own, on a wake event of its own."""
    store = app.coachup.store
    assert _wake(relay) is None
    parent_thread, parent_event = relay._thread, relay._event
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report on the pipe, never return into pytest
        try:
            store.engine.dispose(close=False)  # the parent's pooled connections are not the child's
            assert not relay.running
            job_id = _job(app, 1)
            relay.wake()
            wait_until(lambda: not outbox.unpublished(store, job_id), timeout=30, what="the child's relay to publish")
            assert relay.running and relay._thread is not parent_thread and relay._event is not parent_event
            report = "ok"
        except BaseException:
            report = traceback.format_exc()
        os.write(write_end, report.encode()[:60000])
        os._exit(0)
    os.close(write_end)
    try:
        with selectors.DefaultSelector() as sel:  # poll, not select(): the suite may hold over 1,024 descriptors
            sel.register(read_end, selectors.EVENT_READ)
            ready = sel.select(60)
        report = os.read(read_end, 65536).decode() if ready else "no report from the child within 60 s"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert report == "ok", report
    assert relay.running and relay._thread is parent_thread  # the parent's thread is untouched
    assert redis.client().llen("assessments") == 1
