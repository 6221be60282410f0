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
