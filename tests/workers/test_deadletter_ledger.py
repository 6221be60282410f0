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
        store.engine.dispose()
    finally:
        pg.drop()
