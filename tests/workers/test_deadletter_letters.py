"""`workers.deadletter` in-process, on the embedded broker and SQLite: every field of a letter, what its record
message and a redriven message carry on the broker, the ledger marker, and the sweep that resends lost letters."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from coachup.deadletters import DeadLetter
from coachup.redaction import scrub
from coachup.store.models import utcnow
from tests.support.broker import waiting_envelopes

KEY = "0b7c0a4e-0000-4000-8000-000000000201"


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    return create_celery(offline_settings.replace(test_tasks=True))


class Rejected(Exception):
    """An error that names its own type and safe message (as `coachup.errors` do)."""

    type = "upstream_rejected"
    message = "token sk-live-abcdefghijklmnopqrstuvwx refused"


def _letter(**fields) -> DeadLetter:
    base = {
        "id": f"{KEY}.1",
        "task_id": KEY,
        "task": "testing.permanent",
        "queue": "assessments",
        "reason": "permanent",
        "error_type": "provider_rejected",
        "error_message": "provider said 400",
        "attempts": 1,
        "first_failure_at": "2026-11-30T00:00:00.000Z",
        "last_failure_at": "2026-11-30T00:00:01.000Z",
        "args": [KEY],
        "kwargs": {"mode": "full"},
        "headers": {"requestId": "req-9", "firstFailureAtMs": 1764460800000, "redriveCount": 1},
        "redrives": 1,
    }
    return DeadLetter(**{**base, **fields})


def _body(envelope: dict) -> list:
    """A Celery protocol 2 message's body: [args, kwargs, embed]."""
    return json.loads(base64.b64decode(envelope["body"]))


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# ---- build_letter / timeout_letter --------------------------------------------------------------------------


def test_a_letter_carries_the_request_delivery_and_failure_fields(app):
    from workers.deadletter import build_letter

    task = app.tasks["testing.permanent"]
    task.push_request(
        id=KEY,
        args=[KEY],
        kwargs={"mode": "full"},
        retries=2,
        hostname="w1@host",
        delivery_info={"routing_key": "stt"},  # not the default queue: the queue it was delivered from
        headers={"requestId": "req-1", "redriveCount": 3, "firstFailureAtMs": 1764460800000, "x-user-id": "alice"},
        properties={"MessageGroupId": "grp-1"},
    )
    try:
        letter = build_letter(task, Rejected("raw text"), "retries_exhausted", now_ms=1764460801234)
    finally:
        task.pop_request()

    assert letter == DeadLetter(
        id=f"{KEY}.3",
        task_id=KEY,
        task="testing.permanent",
        queue="stt",
        reason="retries_exhausted",
        error_type="upstream_rejected",  # the error's own type, not its class name
        error_message=scrub(Rejected.message),  # its safe message, scrubbed; never str(exc)
        attempts=3,
        first_failure_at="2025-11-30T00:00:00.000Z",
        last_failure_at="2025-11-30T00:00:01.234Z",
        worker="w1@host",
        args=[KEY],
        kwargs={"mode": "full"},
        headers={"requestId": "req-1", "redriveCount": 3, "firstFailureAtMs": 1764460800000},
        group_id="grp-1",
        redrives=3,
    )
    assert "sk-live" not in letter.error_message


def test_a_letter_of_a_bare_request_falls_back_to_defaults_and_the_clock(app):
    from workers.deadletter import build_letter

    task = app.tasks["testing.permanent"]
    task.push_request(id=KEY)  # no delivery info, headers, hostname, retries or arguments
    before = int(time.time() * 1000)
    try:
        letter = build_letter(task, ValueError("bad value"), "permanent")
    finally:
        task.pop_request()
    after = int(time.time() * 1000)

    assert (letter.id, letter.redrives, letter.attempts, letter.worker) == (f"{KEY}.0", 0, 1, "")
    assert letter.queue == app.conf.task_default_queue and letter.group_id is None
    assert (letter.error_type, letter.error_message) == ("ValueError", "bad value")
    assert (letter.args, letter.kwargs, letter.headers) == ([], {}, {})
    assert letter.first_failure_at == letter.last_failure_at and letter.last_failure_at.endswith("Z")
    assert before - 1 <= _ms(letter.last_failure_at) <= after + 1


def test_a_timeout_letter_names_the_routed_queue_and_the_parents_clock(app):
    from workers.deadletter import timeout_letter

    task = app.tasks["deadletter.record"]  # routed to `deadletter`, not the default queue
    assert app.conf.task_default_queue != "deadletter"
    exc = TimeoutError("hard limit of 30 s; key sk-live-abcdefghijklmnopqrstuvwx")
    before = int(time.time() * 1000)
    letter = timeout_letter(task, exc, "tid-1", ("a", 1), {"k": "v"})
    after = int(time.time() * 1000)

    assert (letter.id, letter.task_id, letter.task, letter.queue) == (
        "tid-1.0",
        "tid-1",
        "deadletter.record",
        "deadletter",
    )
    assert (letter.reason, letter.error_type, letter.error_message) == ("time_limit", "TimeoutError", scrub(exc))
    assert "sk-live" not in letter.error_message
    assert (letter.attempts, letter.args, letter.kwargs, letter.headers) == (1, ["a", 1], {"k": "v"}, {})
    assert letter.first_failure_at == letter.last_failure_at and letter.last_failure_at.endswith("Z")
    assert before - 1 <= _ms(letter.last_failure_at) <= after + 1
    bare = timeout_letter(app.tasks["testing.permanent"], exc, "tid-2", None, None)
    assert (bare.queue, bare.args, bare.kwargs) == (app.conf.task_default_queue, [], {})


# ---- ledger_letter ------------------------------------------------------------------------------------------


def test_ledger_letter_writes_one_marker_and_says_so_again_for_a_second_try(app):
    from coachup.store.deadletters import StoreDeadLetters
    from workers.deadletter import ledger_letter

    letter = _letter()
    assert ledger_letter(app.coachup, letter) is True
    assert ledger_letter(app.coachup, letter) is True  # an earlier try's marker is there: still ledgered
    letters = StoreDeadLetters(app.coachup.store)
    assert letters.pending() == 1 and [x.id for x in letters.unrecorded(-60)] == [letter.id]


def test_ledger_letter_with_the_store_down_is_false_and_logged_by_reference(caplog):
    from coachup.store import create_store
    from workers.deadletter import ledger_letter

    down = create_store("postgresql+psycopg://coachup@127.0.0.1:9/coachup", init_schema=False)  # nothing listens
    with caplog.at_level(logging.WARNING, logger="coachup.worker"):
        assert ledger_letter(SimpleNamespace(store=down), _letter()) is False
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "dead_letter_not_ledgered"]
    assert record.levelno == logging.WARNING
    assert (record.deadLetterId, record.task) == (f"{KEY}.1", "testing.permanent")
    down.engine.dispose()


# ---- publish_letter / redrive_sender: what the broker holds ----------------------------------------------------


def test_a_published_letter_is_a_record_message_on_the_deadletter_queue(app):
    from workers.deadletter import publish_letter

    letter = _letter()
    publish_letter(app, letter)
    publish_letter(app, letter, ledgered=True)

    plain, ledgered = waiting_envelopes(app, ["deadletter"])
    assert waiting_envelopes(app, ["assessments"]) == []
    for envelope in (plain, ledgered):
        assert envelope["headers"]["task"] == "deadletter.record"
        assert envelope["properties"]["delivery_info"]["routing_key"] == "deadletter"
        assert envelope["headers"]["requestId"] == "req-9"  # the request id only: no other letter header
        assert "firstFailureAtMs" not in envelope["headers"] and "redriveCount" not in envelope["headers"]
        assert envelope["headers"]["ignore_result"] is True
    assert _body(plain)[:2] == [[letter.to_dict()], {}]
    assert _body(ledgered)[:2] == [[letter.to_dict()], {"ledgered": True}]


def test_the_redrive_sender_sends_the_original_job_again_with_one_more_redrive(app):
    from workers.deadletter import redrive_sender

    letter = _letter(queue="stt")  # back to the queue it died on, not where its task routes by default
    first_run = _letter(id=f"{KEY}.0", redrives=0, headers={"requestId": "req-8"})  # no first failure carried
    before = int(time.time() * 1000)
    send = redrive_sender(app)
    send(letter)
    send(first_run)
    after = int(time.time() * 1000)

    [envelope] = waiting_envelopes(app, ["stt"])
    headers = envelope["headers"]
    assert (headers["task"], headers["id"]) == ("testing.permanent", KEY)
    assert envelope["properties"]["delivery_info"]["routing_key"] == "stt"
    assert headers["redriveCount"] == 2 and headers["requestId"] == "req-9"
    assert "firstFailureAtMs" not in headers  # the redriven job's first failure is its next one
    assert before <= headers["enqueuedAtMs"] <= after
    assert headers["ignore_result"] is True
    assert _body(envelope)[:2] == [[KEY], {"mode": "full"}]
    assert letter.headers["firstFailureAtMs"] == 1764460800000  # the letter itself is not changed
    [again] = waiting_envelopes(app, ["assessments"])
    assert (again["headers"]["redriveCount"], again["headers"]["requestId"]) == (1, "req-8")


# ---- resend_lost_letters ------------------------------------------------------------------------------------


def _age(store, letter_id: str, hours: int) -> None:
    """Set a marker's last publish `hours` back (a letter whose record message was lost that long ago)."""
    from sqlalchemy import update

    from coachup.store.deadletters import LedgeredLetterRow

    with store.session() as s, s.begin():
        s.execute(
            update(LedgeredLetterRow)
            .where(LedgeredLetterRow.id == letter_id)
            .values(sent_at=utcnow() - timedelta(hours=hours))
        )


def test_the_sweep_resends_the_oldest_lost_letters_once_counts_and_logs_them(app, caplog):
    from coachup.store.deadletters import StoreDeadLetters
    from workers.deadletter import resend_lost_letters
    from workers.metrics_host import metrics_for

    store = app.coachup.store
    letters = StoreDeadLetters(store)
    ids = [f"{KEY}.{n}" for n in range(3)]
    for n, letter_id in enumerate(ids):
        letters.ledger(_letter(id=letter_id, redrives=n))
        _age(store, letter_id, 3 - n)  # .0 lost 3 h ago, .1 2 h, .2 1 h
    resent = metrics_for(app).registry.get_sample_value

    with caplog.at_level(logging.WARNING, logger="coachup.worker"):
        assert resend_lost_letters(app, store, 60, limit=2) == 2  # the two oldest: at most `limit` per pass
        sent_first = [_body(e)[0][0]["id"] for e in waiting_envelopes(app, ["deadletter"])]
        assert resend_lost_letters(app, store, 60, limit=2) == 1  # the two just resent are not old again
        assert resend_lost_letters(app, store, 60) == 0

    assert sent_first == ids[:2]
    envelopes = waiting_envelopes(app, ["deadletter"])
    assert [_body(e)[0][0]["id"] for e in envelopes] == ids
    assert all(_body(e)[1] == {"ledgered": True} for e in envelopes)
    assert resent("coachup_deadletters_resent_total", {"task": "testing.permanent"}) == 3
    events = [r for r in caplog.records if getattr(r, "event", None) == "dead_letter_resent"]
    assert [r.deadLetterId for r in events] == ids and all(r.levelno == logging.WARNING for r in events)
    first = events[0]
    assert (first.taskId, first.task, first.queue, first.reason) == (
        KEY,
        "testing.permanent",
        "assessments",
        "record_missing",
    )
    assert letters.pending() == 3  # the markers stay until the record task inserts the letters


def test_one_sweep_resends_at_most_200_letters(app):
    from sqlalchemy import insert

    from coachup.store.deadletters import LedgeredLetterRow
    from workers.deadletter import resend_lost_letters

    store = app.coachup.store
    lost = utcnow() - timedelta(hours=1)
    rows = [{"id": f"{KEY}.{n}", "record": _letter(id=f"{KEY}.{n}").to_dict(), "sent_at": lost} for n in range(201)]
    with store.session() as s, s.begin():
        s.execute(insert(LedgeredLetterRow), rows)
    assert resend_lost_letters(app, store, 60) == 200  # one bounded pass; the next tick takes the rest
    assert resend_lost_letters(app, store, 60) == 1


def test_the_sweep_skips_a_letter_recorded_between_its_read_and_its_claim(app):
    from sqlalchemy import event

    from coachup.store.deadletters import StoreDeadLetters
    from workers.deadletter import resend_lost_letters

    store = app.coachup.store
    letters = StoreDeadLetters(store)
    first, second = _letter(id=f"{KEY}.0", redrives=0), _letter(id=f"{KEY}.1", redrives=1)
    for hours, letter in ((2, first), (1, second)):
        letters.ledger(letter)
        _age(store, letter.id, hours)
    raced: list[str] = []

    def record_first_meanwhile(conn, cursor, statement, *rest):
        # the record task, on another connection, inserts the first letter just before the sweep claims it
        if statement.startswith("UPDATE dead_letter_ledger") and not raced:
            raced.append(first.id)
            assert letters.add(first, ledgered=True)

    event.listen(store.engine, "before_cursor_execute", record_first_meanwhile)
    try:
        assert resend_lost_letters(app, store, 60) == 1  # the claim of the recorded one fails: skipped, not sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record_first_meanwhile)
    assert raced == [first.id]
    assert [_body(e)[0][0]["id"] for e in waiting_envelopes(app, ["deadletter"])] == [second.id]
