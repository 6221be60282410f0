"""Idempotency keys in the store (coachup/store/idempotency.py): one request claims a key and does the work,
every other request with it gets that row (to replay once `done`), and a forgotten key can be claimed again."""

from __future__ import annotations

from coachup.store import create_store
from coachup.store.idempotency import claim_key, finish_key, forget_key


def test_the_first_request_claims_a_key_and_the_next_sees_it_pending(store_url):
    store = create_store(store_url)
    assert claim_key(store, "k:1") is None  # claimed: this request does the work
    seen = claim_key(store, "k:1")
    assert seen is not None and (seen.key_hash, seen.state, seen.status_code, seen.body) == (
        "k:1",
        "pending",
        None,
        None,
    )


def test_a_finished_key_replays_its_first_answer(store_url):
    store = create_store(store_url)
    claim_key(store, "k:1")
    claim_key(store, "k:2")
    finish_key(store, "k:1", 202, {"taskId": "t-1"})
    done = claim_key(store, "k:1")
    assert (done.state, done.status_code, done.body) == ("done", 202, {"taskId": "t-1"})
    # finishing one key leaves the others as they were
    assert claim_key(store, "k:2").state == "pending"


def test_a_forgotten_key_is_claimed_afresh_and_others_stay(store_url):
    store = create_store(store_url)
    claim_key(store, "k:1")
    claim_key(store, "k:2")
    forget_key(store, "k:1")
    assert claim_key(store, "k:1") is None  # the client's retry does the work
    assert claim_key(store, "k:2") is not None


def test_a_key_released_between_a_refused_claim_and_its_read_is_claimed_by_the_next_request(store_url):
    # Given a key held by a first request, and a second request whose insert is refused because of it
    from sqlalchemy import event

    store = create_store(store_url)
    claim_key(store, "k:1")
    refused, released = [], []

    def note_refusal(context):
        refused.append(True)

    def release_before_the_read(conn, cursor, statement, parameters, context, executemany):
        # the first request answers 5xx and forgets its key after the second one's insert was refused,
        # before that one reads the row it would replay
        if refused and not released and statement.lstrip().upper().startswith("SELECT"):
            if "idempotency_keys" in statement:
                released.append(True)
                forget_key(store, "k:1")

    event.listen(store.engine, "handle_error", note_refusal)
    event.listen(store.engine, "before_cursor_execute", release_before_the_read)
    try:
        # When the second request finds no row to replay, Then it claims the key itself and does the work
        assert claim_key(store, "k:1") is None
    finally:
        event.remove(store.engine, "handle_error", note_refusal)
        event.remove(store.engine, "before_cursor_execute", release_before_the_read)
    assert released == [True]
    seen = claim_key(store, "k:1")
    assert seen is not None and seen.state == "pending"
