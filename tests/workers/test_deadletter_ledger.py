"""The dead-letter ledger (issue 16, finding 3): a letter's marker in the store outlives a lost record message.

In-process, on the embedded broker and SQLite: the sweep publishes an unrecorded letter again, once per
period; the record task inserts it once and drops the marker; a late copy of a letter already recorded (and
perhaps redriven since) inserts nothing.
"""

from __future__ import annotations

import pytest

from coachup.deadletters import DeadLetter
from tests.support.broker import waiting_envelopes


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    return create_celery(offline_settings)


def _letter(n: int = 1) -> DeadLetter:
    return DeadLetter(
        id=f"0b7c0a4e-0000-4000-8000-00000000010{n}.0",
        task_id=f"0b7c0a4e-0000-4000-8000-00000000010{n}",
        task="assessments.run",
        queue="assessments",
        reason="permanent",
        error_type="provider_rejected",
        error_message="provider said 400",
        attempts=1,
        first_failure_at="2026-11-30T00:00:00.000Z",
        last_failure_at="2026-11-30T00:00:00.000Z",
        args=[f"0b7c0a4e-0000-4000-8000-00000000010{n}"],
    )


def _letters(app):
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(app.coachup.store)


def test_the_sweep_publishes_an_unrecorded_letter_again_once_per_period(app):
    from workers.deadletter import resend_lost_letters

    letters = _letters(app)
    letter = _letter()
    assert letters.ledger(letter) and not letters.ledger(letter)  # a second try of the same letter: one marker
    # Given a ledgered letter whose record message is nowhere (the broker lost it)
    assert waiting_envelopes(app, ["deadletter"]) == []
    # When the sweep runs twice in a row, with a resend period of 60 s (the first pass treats it as old)
    first = resend_lost_letters(app, app.coachup.store, 0)
    second = resend_lost_letters(app, app.coachup.store, 60)
    # Then the letter is published again once, marked as ledgered, and the marker stays until it is recorded
    assert (first, second) == (1, 0)
    [envelope] = waiting_envelopes(app, ["deadletter"])
    assert envelope["headers"]["task"] == "deadletter.record"
    assert letters.pending() == 1


def test_the_record_task_inserts_a_ledgered_letter_once_and_never_after_a_redrive(app):
    letters = _letters(app)
    letter = _letter(2)
    letters.ledger(letter)
    record = app.tasks["deadletter.record"]
    # the first copy records it and drops the marker
    assert record.apply(args=[letter.to_dict()], kwargs={"ledgered": True}).get()["created"] is True
    assert (letters.pending(), letters.depth()) == (0, 1)
    # a second copy (the sweep resent it while the first was only slow) inserts nothing
    assert record.apply(args=[letter.to_dict()], kwargs={"ledgered": True}).get()["created"] is False
    # after a redrive took the letter out, a late copy does not bring it back
    assert letters.remove(letter.id)
    assert record.apply(args=[letter.to_dict()], kwargs={"ledgered": True}).get()["created"] is False
    assert (letters.pending(), letters.depth()) == (0, 0)


def test_a_letter_published_without_a_marker_is_still_recorded(app):
    # the store was down when the job died (no marker), or the message predates the ledger
    letters = _letters(app)
    letter = _letter(3)
    assert app.tasks["deadletter.record"].apply(args=[letter.to_dict()]).get()["created"] is True
    assert letters.get(letter.id) is not None


def test_the_ledger_and_its_claims_behave_the_same_on_postgresql():
    from coachup.store import create_store
    from coachup.store.deadletters import StoreDeadLetters
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    try:
        store = create_store(pg.url)
        letters = StoreDeadLetters(store)
        letter = _letter(7)
        assert letters.ledger(letter) and not letters.ledger(letter)
        assert [x.id for x in letters.unrecorded(0)] == [letter.id] and letters.unrecorded(60) == []
        assert letters.claim_resend(letter.id, 0) and not letters.claim_resend(letter.id, 60)  # one sweeper wins
        assert letters.add(letter, ledgered=True) and (letters.pending(), letters.depth()) == (0, 1)
        assert not letters.add(letter, ledgered=True)
        assert letters.remove(letter.id) and not letters.add(letter, ledgered=True) and letters.depth() == 0
        newer, older = _letter(8), _letter(9)  # ledgered in this order, the second lost longer ago
        for n, marked in enumerate((newer, older)):
            letters.ledger(marked)
            _age(store, marked.id, 100 + 100 * n)
        assert [x.id for x in letters.unrecorded(60)] == [older.id, newer.id]  # oldest first, not insert order
        store.engine.dispose()
    finally:
        pg.drop()


def _age(store, letter_id: str, seconds: float) -> None:
    """Set a marker's last publish `seconds` back (its record message was lost that long ago)."""
    from datetime import timedelta

    from sqlalchemy import update

    from coachup.store.deadletters import LedgeredLetterRow
    from coachup.store.models import utcnow

    with store.session() as s, s.begin():
        s.execute(
            update(LedgeredLetterRow)
            .where(LedgeredLetterRow.id == letter_id)
            .values(sent_at=utcnow() - timedelta(seconds=seconds))
        )


def _marker(store, letter_id: str):
    from coachup.store.deadletters import LedgeredLetterRow

    with store.session() as s:
        row = s.get(LedgeredLetterRow, letter_id)
        return None if row is None else (row.sends, row.sent_at, row.record)


def test_the_ledger_keeps_the_whole_letter_and_reads_the_oldest_past_the_cutoff_first(app):
    store = app.coachup.store
    letters = _letters(app)
    a, b, c = _letter(4), _letter(5), _letter(6)
    for letter, age in ((a, 120), (b, 300), (c, 10)):
        assert letters.ledger(letter)
        _age(store, letter.id, age)
    assert _marker(store, a.id)[0] == 1 and _marker(store, a.id)[2] == a.to_dict()
    assert letters.unrecorded(60) == [b, a]  # older than 60 s, oldest first; the whole letter comes back
    assert letters.unrecorded(60, limit=1) == [b]
    assert letters.unrecorded(400) == []
    assert letters.pending() == 3 and letters.depth() == 0


def test_a_resend_claim_counts_the_send_and_restarts_the_period(app):
    store = app.coachup.store
    letters = _letters(app)
    letter = _letter(4)
    letters.ledger(letter)
    _age(store, letter.id, 120)
    _, sent_before, _ = _marker(store, letter.id)
    assert letters.claim_resend(letter.id, 60) is True
    sends, sent_after, _ = _marker(store, letter.id)
    assert sends == 2 and sent_after > sent_before  # last publish is now: not old again for 60 s
    assert letters.claim_resend(letter.id, 60) is False and letters.unrecorded(60) == []
    assert letters.claim_resend("no-such-letter.0", 0) is False


def test_recording_a_letter_stores_its_columns_and_owner_and_drops_the_marker(app):
    from coachup.store.deadletters import DeadLetterRow

    store = app.coachup.store
    letters = _letters(app)
    job_id = store.create_job("tts", params={}, owner="u:owner-hash")
    letter = DeadLetter(**{**_letter(4).to_dict(), "id": f"{job_id}.0", "task_id": job_id})
    other = _letter(5)  # a marker that is not this letter's stays
    letters.ledger(letter)
    letters.ledger(other)
    assert letters.add(letter) is True  # a message without the ledgered flag still drops its marker
    assert _marker(store, letter.id) is None and _marker(store, other.id) is not None
    with store.session() as s:
        row = s.get(DeadLetterRow, letter.id)
        assert (row.task, row.reason, row.error_type, row.owner) == (
            "assessments.run",
            "permanent",
            "provider_rejected",
            "u:owner-hash",
        )
        assert row.record == letter.to_dict()
    assert letters.add(letter) is False and letters.depth() == 1  # once only, ledgered or not
    assert letters.add(other, ledgered=True) is True and letters.get(other.id).task_id == other.task_id
    with store.session() as s:
        assert s.get(DeadLetterRow, other.id).owner is None  # no job row: no owner


def test_the_record_task_signals_only_a_letter_it_stored(app):
    from workers.signals import dead_lettered

    seen = []

    def on_letter(sender, letter, **_):
        seen.append((sender.name, letter.id))

    dead_lettered.connect(on_letter)
    try:
        record = app.tasks["deadletter.record"]
        letter = _letter(8)
        assert record.apply(args=[letter.to_dict()]).get() == {"id": letter.id, "created": True}
        assert record.apply(args=[letter.to_dict()]).get() == {"id": letter.id, "created": False}
    finally:
        dead_lettered.disconnect(on_letter)
    assert seen == [("deadletter.record", letter.id)]
    assert (record.soft_time_limit, record.time_limit, record.ignore_result) == (20, 30, True)


def test_the_record_task_retries_a_store_error_and_fails_a_malformed_letter_once(app):
    from sqlalchemy.exc import DBAPIError

    record = app.tasks["deadletter.record"]
    assert set(record.autoretry_for) == {DBAPIError, OSError} and tuple(record.dont_autoretry_for) == ()
    assert record.apply(args=[{"id": "x"}]).failed()  # no task, queue, ...: a TypeError, not retried
    assert _letters(app).depth() == 0


def test_the_resend_task_reports_what_it_resent_and_zero_when_the_broker_is_down(app, offline_settings):
    from workers import create_celery

    letters = _letters(app)
    letter = _letter(9)
    letters.ledger(letter)
    lost = app.coachup.settings.deadletter_resend_after_s + 60
    _age(app.coachup.store, letter.id, lost)
    resend = app.tasks["deadletters.resend"]
    assert (resend.soft_time_limit, resend.time_limit, resend.ignore_result) == (20, 30, True)
    assert resend.apply().get() == {"resent": 1}
    assert resend.apply().get() == {"resent": 0}  # resent just now: not again before the period
    [envelope] = waiting_envelopes(app, ["deadletter"])
    assert envelope["headers"]["task"] == "deadletter.record"
    _age(app.coachup.store, letter.id, lost)
    down = create_celery(offline_settings.replace(broker_url="redis://127.0.0.1:9/0"))
    assert down.tasks["deadletters.resend"].apply().get() == {"resent": 0}  # no error: the next tick looks again
    assert letters.pending() == 1


def test_a_letter_recorded_already_drops_a_marker_written_again_and_a_bare_add_records(app):
    letters = _letters(app)
    letter = _letter(4)
    assert letters.add(letter) is True and letters.pending() == 0  # no marker, no flag: recorded
    letters.ledger(letter)  # a worker wrote its marker again (a duplicate delivery of the dying job)
    assert letters.add(letter, ledgered=True) is False
    assert (letters.pending(), letters.depth()) == (0, 1)  # the marker goes anyway: the sweep must not resend it
