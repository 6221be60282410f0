"""The failure table of `workers/guard.py`, row by row, in-process: each task is called the way a worker calls
it (a delivered request on the stack) on the embedded broker and a SQLite store; the letters are read back
from the broker's `deadletter` queue and the store's ledger. Fast enough for `make mutation MODULE=guard`."""

from __future__ import annotations

import base64
import json
import traceback
from types import SimpleNamespace

import pytest
from celery.exceptions import Ignore, Reject, Retry, TimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerDown
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError as StoreDown

from coachup.deadletters import DeadLetter
from coachup.errors import PermanentError, RetryableError, UpstreamRejected, UpstreamUnavailable
from tests.support.broker import waiting_envelopes
from workers.guard import PoisonMessage, guarded, on_hard_time_limit, park_if_stranded, reason
from workers.safe_errors import UnexpectedError
from workers.store_outage import StoreUnavailable

RAW = "sess-GUARD-41 said periwinkle"  # user data in an exception's text: never in a letter or a raised error
KEY = "0b7c0a4e-0000-4000-8000-00000000a001"


def _outcome(fail: str) -> str:
    if fail == "bug":  # an unexpected error quoting user data
        raise KeyError(RAW)
    if fail == "permanent":
        raise UpstreamRejected("provider said 400")
    if fail == "retry":
        raise Retry("later")
    if fail == "ignore":
        raise Ignore()
    if fail == "reject":
        raise Reject("no", requeue=False)
    return "ran"


def _register(app) -> None:
    """Two more test tasks on the real base class, one of a job kind with a dead-letter path and one without
    (like the periodic sweep); each ends as it is told (`_outcome`)."""
    from workers.base import task_options

    @app.task(**task_options(app, "testing", name="testing.lettered", ignore_result=True))
    def lettered(self, key: str, fail: str = "bug") -> str:
        return _outcome(fail)

    @app.task(**task_options(app, "testing", name="testing.unlettered", ignore_result=True, dead_letter=False))
    def unlettered(self, key: str, fail: str = "bug") -> str:
        return _outcome(fail)


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    app = create_celery(offline_settings.replace(test_tasks=True, max_redeliveries=2))
    _register(app)
    return app


@pytest.fixture
def sqs_app(offline_settings):
    """The same tasks on the SQS broker (it dead-letters natively); nothing here talks to SQS."""
    from workers import create_celery

    app = create_celery(
        offline_settings.replace(test_tasks=True, broker_url="sqs://", sqs_endpoint_url="http://127.0.0.1:9")
    )
    assert app.coachup.broker.native_dlq
    return app


def _run_as_worker(app, name: str, *args, retries=0, redelivered=False, redrives=0, is_eager=False, **kwargs):
    """Call task `name` the way a worker does: with a delivered request on the stack."""
    task = app.tasks[name]
    headers = {"requestId": KEY, "x-user-id": "alice"}
    if redrives:
        headers["redriveCount"] = redrives
    task.push_request(
        id=KEY,
        args=list(args),
        kwargs=kwargs,
        retries=retries,
        is_eager=is_eager,
        called_directly=False,
        hostname="w1@host",
        delivery_info={"routing_key": "assessments", "redelivered": redelivered},
        headers=headers,
    )
    try:
        return task(*args, **kwargs)
    finally:
        task.pop_request()


def _published(app) -> list[tuple[DeadLetter, dict]]:
    """Every letter waiting on the broker's `deadletter` queue, with the record task's kwargs."""
    out = []
    for envelope in waiting_envelopes(app, ["deadletter"]):
        assert envelope["headers"]["task"] == "deadletter.record"
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        out.append((DeadLetter.from_dict(args[0]), kwargs))
    return out


def _jobs_waiting(app) -> list[dict]:
    return [e for e in waiting_envelopes(app) if e["headers"]["task"] != "deadletter.record"]


def _store(app):
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(app.coachup.store)


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: B036 - Reject and Retry are what some rows raise
        return exc
    raise AssertionError("nothing raised")


def _refuse(name, **kw):
    raise BrokerDown("broker down")


# ---- rows 1-2: who dead-letters ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("eager", "dead_letter", "native_dlq", "ours"),
    [
        (False, True, False, True),
        (True, True, False, False),
        (False, False, False, False),
        (False, True, True, False),
        (True, False, True, False),
    ],
)
def test_only_a_worker_run_of_a_lettered_job_on_a_broker_without_native_dlq_is_ours(
    eager, dead_letter, native_dlq, ours
):
    task = SimpleNamespace(
        request=SimpleNamespace(is_eager=eager),
        dead_letter=dead_letter,
        runtime=SimpleNamespace(broker=SimpleNamespace(native_dlq=native_dlq)),
    )
    assert guarded(task) is ours


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PoisonMessage("x"), "redeliveries"),
        (UnexpectedError("x"), "unexpected"),
        (UpstreamRejected("x"), "permanent"),
        (PermanentError("x"), "permanent"),
        (UpstreamUnavailable("x"), "retries_exhausted"),
        (StoreUnavailable("x"), "retries_exhausted"),
        (RetryableError("x"), "retries_exhausted"),
        (TimeLimitExceeded(1), "unexpected"),
        (ValueError("x"), "unexpected"),
    ],
)
def test_the_reason_of_each_kind_of_failure(exc, expected):
    assert reason(exc) == expected


@pytest.mark.parametrize(("eager", "name"), [(True, "testing.permanent"), (False, "testing.unlettered")])
def test_a_bare_run_fails_as_celery_would_with_no_letter_and_the_same_error(app, eager, name):
    kwargs = {"fail": "permanent"} if name == "testing.unlettered" else {}
    exc = _raised(lambda: _run_as_worker(app, name, KEY, is_eager=eager, **kwargs))
    assert isinstance(exc, UpstreamRejected)  # the deliberate error itself, not a stand-in
    assert _published(app) == [] and _store(app).pending() == 0


def test_a_bare_run_withholds_an_unexpected_error_too(app):
    exc = _raised(lambda: _run_as_worker(app, "testing.unlettered", KEY))
    assert isinstance(exc, UnexpectedError) and exc.type == "KeyError"
    assert exc.__cause__ is None and exc.__suppress_context__  # raised `from None`: the KeyError is not chained
    assert RAW not in "".join(traceback.format_exception(exc))
    assert _published(app) == []


@pytest.mark.parametrize(("fail", "control"), [("retry", Retry), ("ignore", Ignore), ("reject", Reject)])
@pytest.mark.parametrize("name", ["testing.lettered", "testing.unlettered"])
def test_celery_control_flow_passes_through_both_paths(app, fail, control, name):
    exc = _raised(lambda: _run_as_worker(app, name, KEY, fail=fail))
    assert type(exc) is control
    assert _published(app) == [] and _store(app).pending() == 0


def test_a_bare_run_returns_what_the_body_returns(app):
    assert _run_as_worker(app, "testing.unlettered", KEY, fail="no") == "ran"
    assert _run_as_worker(app, "testing.flaky", KEY, 1, is_eager=True) == "ok"


def test_on_sqs_a_failure_is_left_to_the_redrive_policy(sqs_app):
    exc = _raised(lambda: _run_as_worker(sqs_app, "testing.permanent", KEY))
    assert isinstance(exc, UpstreamRejected)
    assert _store(sqs_app).pending() == 0  # no letter of ours: the message stays in its queue for SQS to move


# ---- rows 5-8: the guarded run ------------------------------------------------------------------------------
def test_a_successful_run_returns_its_value_and_publishes_nothing(app):
    assert _run_as_worker(app, "testing.flaky", KEY, 1) == "ok"
    assert _published(app) == [] and _store(app).pending() == 0


def test_a_retry_with_retries_left_passes_through_as_a_retry_and_no_letter(app):
    exc = _raised(lambda: _run_as_worker(app, "testing.retryable", KEY))
    assert isinstance(exc, Retry)
    assert _published(app) == [] and _store(app).pending() == 0
    [again] = _jobs_waiting(app)  # Celery's retry: the same job on its queue again
    assert again["headers"]["id"] == KEY and again["headers"]["retries"] == 1


def test_a_permanent_error_becomes_a_ledgered_permanent_letter_and_fails_the_job_with_its_own_error(app):
    exc = _raised(lambda: _run_as_worker(app, "testing.permanent", KEY))
    assert isinstance(exc, UpstreamRejected)  # the deliberate error itself (the letter scrubs its text)
    [(letter, kwargs)] = _published(app)
    assert "user:pw" not in letter.error_message
    assert (letter.id, letter.task_id, letter.task, letter.reason) == (
        f"{KEY}.0",
        KEY,
        "testing.permanent",
        "permanent",
    )
    assert letter.error_type == "upstream_rejected" and kwargs == {"ledgered": True}
    assert [x.id for x in _store(app).unrecorded(-1)] == [letter.id]  # in the ledger too


def test_retries_exhausted_becomes_a_retries_exhausted_letter(app):
    exc = _raised(lambda: _run_as_worker(app, "testing.retryable", KEY, retries=3))
    assert isinstance(exc, UpstreamUnavailable)
    [(letter, _)] = _published(app)
    assert letter.reason == "retries_exhausted" and letter.attempts == 4
    assert _jobs_waiting(app) == []  # no further retry


def test_an_unexpected_error_is_lettered_and_raised_without_its_text(app):
    exc = _raised(lambda: _run_as_worker(app, "testing.lettered", KEY))
    assert isinstance(exc, UnexpectedError) and exc.__cause__ is None and exc.__suppress_context__
    assert RAW not in "".join(traceback.format_exception(exc))
    [(letter, _)] = _published(app)
    assert (letter.reason, letter.error_type) == ("unexpected", "KeyError")
    assert RAW not in json.dumps(letter.to_dict())


def test_a_letter_that_cannot_be_published_nor_ledgered_requeues_the_job(app, monkeypatch):
    from coachup.store.deadletters import StoreDeadLetters

    def store_down(self, letter):
        raise StoreDown("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(app, "send_task", _refuse)
    monkeypatch.setattr(StoreDeadLetters, "ledger", store_down)
    exc = _raised(lambda: _run_as_worker(app, "testing.permanent", KEY))
    assert isinstance(exc, Reject) and exc.requeue is True
    assert exc.reason == "dead letter not published (OperationalError)"
    assert exc.__cause__ is None and exc.__suppress_context__


def test_a_ledgered_letter_the_broker_refuses_fails_the_job_with_its_own_error(app, monkeypatch):
    monkeypatch.setattr(app, "send_task", _refuse)
    exc = _raised(lambda: _run_as_worker(app, "testing.permanent", KEY))
    assert isinstance(exc, UpstreamRejected)
    [letter] = _store(app).unrecorded(-1)
    assert letter.reason == "permanent"


# ---- row 3: a redriven job settles its letter ---------------------------------------------------------------
def _letter(redrives: int) -> DeadLetter:
    return DeadLetter(
        id=f"{KEY}.{redrives}",
        task_id=KEY,
        task="testing.flaky",
        queue="assessments",
        reason="retries_exhausted",
        error_type="upstream_unavailable",
        error_message="provider answered 503",
        attempts=4,
        first_failure_at="2026-11-22T10:00:00.000Z",
        last_failure_at="2026-11-22T10:00:01.000Z",
        args=[KEY, 1],
        redrives=redrives,
    )


def _left(app) -> list[str]:
    return sorted(x.id for x in _store(app).list())


def test_a_redriven_job_that_starts_drops_the_letter_it_was_redriven_from(app):
    for n in (0, 1):
        _store(app).add(_letter(n))
    assert _run_as_worker(app, "testing.flaky", KEY, 1, redrives=2) == "ok"
    assert _left(app) == [f"{KEY}.0"]  # its second redrive came from letter .1; the older one is not its own


def test_a_retry_of_a_redriven_job_and_a_job_never_redriven_drop_no_letter(app):
    _store(app).add(_letter(0))
    _run_as_worker(app, "testing.flaky", KEY, 1, redrives=1, retries=1)  # settled on its first run already
    _run_as_worker(app, "testing.flaky", KEY, 1)  # redriveCount 0: no letter of a redrive to settle
    assert _left(app) == [f"{KEY}.0"]


def test_a_redriven_job_settles_before_it_fails_again(app):
    _store(app).add(_letter(0))
    _raised(lambda: _run_as_worker(app, "testing.permanent", KEY, redrives=1))
    assert _left(app) == []  # the crash-left letter is gone; the new failure's letter is on the broker
    [(letter, _)] = _published(app)
    assert letter.id == f"{KEY}.1" and letter.redrives == 1


# ---- row 4: poison messages ----------------------------------------------------------------------------------
def _died(app, key: str, times: int) -> None:
    """`times` earlier redeliveries of the message `key` counted, and each lost its worker (no outcome)."""
    for _ in range(times):
        _store(app).count_redelivery(key)


def test_a_redelivery_within_the_limit_runs_and_clears_its_counter(app):
    _died(app, f"{KEY}.0.0", 1)  # the limit is 2 redeliveries: this is the second
    assert _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True) == "ok"
    assert _published(app) == []
    assert _store(app).count_redelivery(f"{KEY}.0.0") == 1  # the run finished: counting starts again


def test_the_redelivery_over_the_limit_is_a_poison_message_letter(app):
    _died(app, f"{KEY}.0.0", 2)
    exc = _raised(lambda: _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True))
    assert isinstance(exc, PoisonMessage) and exc.type == "redeliveries_exceeded"
    [(letter, _)] = _published(app)
    assert (letter.reason, letter.error_type) == ("redeliveries", "redeliveries_exceeded")
    assert letter.error_message == "delivered 4 times, its worker died each time (limit 2 redeliveries)"


def test_each_retry_and_each_redrive_has_its_own_redelivery_budget(app):
    _died(app, f"{KEY}.0.0", 2)  # the first delivery's budget is spent
    _died(app, f"{KEY}.1.0", 2)  # so is the first redrive's
    # a retry (retries 1) and the second redrive are new messages: they run
    assert _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True, retries=1) == "ok"
    assert _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True, redrives=2) == "ok"
    assert _published(app) == []
    # the first redrive's message, redelivered once more, is poison
    assert isinstance(
        _raised(lambda: _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True, redrives=1)), PoisonMessage
    )


def test_a_first_delivery_is_never_counted(app):
    _died(app, f"{KEY}.0.0", 5)
    assert _run_as_worker(app, "testing.flaky", KEY, 1) == "ok"  # not redelivered: no count, no poison
    assert _store(app).count_redelivery(f"{KEY}.0.0") == 6  # and its counter is not touched


def test_a_request_without_delivery_info_or_retries_is_not_counted(app):
    task = app.tasks["testing.lettered"]
    task.push_request(id=KEY, args=[KEY], kwargs={"fail": "no"}, retries=None, is_eager=False, delivery_info=None)
    try:
        assert task(KEY, fail="no") == "ran"
    finally:
        task.pop_request()


def test_a_requeued_job_keeps_its_redelivery_count(app, monkeypatch):
    from coachup.store.deadletters import StoreDeadLetters

    def store_down(self, letter):
        raise StoreDown("INSERT", {}, Exception("connection refused"))

    _died(app, f"{KEY}.0.0", 1)
    monkeypatch.setattr(app, "send_task", _refuse)
    monkeypatch.setattr(StoreDeadLetters, "ledger", store_down)
    assert isinstance(_raised(lambda: _run_as_worker(app, "testing.permanent", KEY, redelivered=True)), Reject)
    monkeypatch.undo()
    # back on its queue, not done with: this delivery still counts against the message's budget
    assert _store(app).count_redelivery(f"{KEY}.0.0") == 3


def test_a_counter_that_cannot_be_dropped_costs_nothing(app, monkeypatch):
    from coachup.store.deadletters import StoreDeadLetters

    def store_down(self, key):
        raise StoreDown("DELETE", {}, Exception("connection refused"))

    monkeypatch.setattr(StoreDeadLetters, "forget_redeliveries", store_down)
    assert _run_as_worker(app, "testing.flaky", KEY, 1, redelivered=True) == "ok"


# ---- rows 10-11: hard time limits, in the parent -----------------------------------------------------------
def test_a_job_killed_at_its_hard_time_limit_gets_a_ledgered_time_limit_letter(app):
    task = app.tasks["testing.slow"]
    on_hard_time_limit(task, TimeLimitExceeded(1), KEY, [KEY], {"seconds": 60.0})
    [(letter, kwargs)] = _published(app)
    assert (letter.id, letter.reason, letter.error_type) == (f"{KEY}.0", "time_limit", "TimeLimitExceeded")
    assert (letter.args, letter.kwargs) == ([KEY], {"seconds": 60.0}) and kwargs == {"ledgered": True}
    assert [x.id for x in _store(app).unrecorded(-1)] == [letter.id]


def test_a_killed_job_without_a_letter_path_or_on_sqs_gets_no_letter(app, sqs_app):
    on_hard_time_limit(app.tasks["testing.unlettered"], TimeLimitExceeded(1), KEY, [KEY], {})
    assert _published(app) == [] and _store(app).pending() == 0
    on_hard_time_limit(sqs_app.tasks["testing.hang"], TimeLimitExceeded(1), KEY, [KEY], {})
    assert _store(sqs_app).pending() == 0


@pytest.mark.parametrize(("kwargs", "ledgered"), [({"ledgered": True}, {"ledgered": True}), ({}, {}), (None, {})])
def test_a_killed_letter_recorder_puts_the_same_letter_back_as_it_came(app, kwargs, ledgered):
    from workers.deadletter import RECORD_TASK

    letter = _letter(0)
    on_hard_time_limit(app.tasks[RECORD_TASK], TimeLimitExceeded(30), "record-id", [letter.to_dict()], kwargs)
    assert _published(app) == [(letter, ledgered)]
    assert _store(app).pending() == 0  # the letter's own marker (or none): nothing new is ledgered


# ---- row 12: a job without a letter, its row not marked failed, the store down ------------------------------
def _park(app, name: str, exc: BaseException, *, marked: bool) -> bool:
    task = app.tasks[name]
    task.push_request(id=KEY, args=[KEY], kwargs={}, retries=3, headers={"requestId": KEY})
    try:
        return park_if_stranded(task, exc, KEY, [KEY], {"fail": "bug"}, marked=marked)
    finally:
        task.pop_request()


@pytest.mark.parametrize(
    "exc",
    [
        StoreUnavailable("down"),
        StoreDown("SELECT", {}, Exception("refused")),
        InterfaceError("SELECT", {}, Exception()),
    ],
)
def test_a_stranded_job_without_a_letter_is_parked_on_its_queue(app, exc):
    assert _park(app, "testing.unlettered", exc, marked=False) is True
    [parked] = _jobs_waiting(app)
    assert parked["headers"]["id"] == KEY and parked["headers"]["task"] == "testing.unlettered"
    assert json.loads(base64.b64decode(parked["body"]))[:2] == [[KEY], {"fail": "bug"}]  # the same call
    assert parked["headers"]["eta"] is not None  # after the backoff cap


@pytest.mark.parametrize(
    ("name", "exc", "marked"),
    [
        ("testing.unlettered", StoreUnavailable("down"), True),  # its row says failed: done with
        ("testing.permanent", StoreUnavailable("down"), False),  # it has a letter
        ("testing.unlettered", UpstreamRejected("no"), False),  # the store is not the problem
        ("testing.unlettered", UpstreamUnavailable("503"), False),
    ],
)
def test_a_job_that_is_not_stranded_is_not_parked(app, name, exc, marked):
    assert _park(app, name, exc, marked=marked) is False
    assert _jobs_waiting(app) == []


def test_a_stranded_job_the_broker_refuses_is_reported_not_parked(app, monkeypatch):
    task = app.tasks["testing.unlettered"]
    monkeypatch.setattr(task, "apply_async", lambda *a, **kw: _refuse("x"))
    assert _park(app, "testing.unlettered", StoreUnavailable("down"), marked=False) is False
