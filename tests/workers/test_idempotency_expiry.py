"""`Idempotency-Key` rows expire after COACHUP_IDEMPOTENCY_TTL_S: the scheduler's `idempotency.expire` sweep
deletes older ones (answered or still pending) and keeps younger ones; an expired key is claimed anew."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from coachup.store.idempotency import IdempotencyRow, claim_key, finish_key
from coachup.store.models import utcnow


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    return create_celery(offline_settings.replace(idempotency_ttl_s=3600))


def _age(store, key: str, seconds: float) -> None:
    with store.session() as s, s.begin():
        s.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.key_hash == key)
            .values(created_at=utcnow() - timedelta(seconds=seconds))
        )


def _keys(store) -> set[str]:
    with store.session() as s:
        return set(s.scalars(select(IdempotencyRow.key_hash)))


def test_the_sweep_deletes_keys_past_the_ttl_and_keeps_younger_ones(app):
    store = app.coachup.store
    # Given answered and pending keys, two of them older than the one-hour TTL
    for key in ("old-done", "old-pending", "young-done", "young-pending"):
        assert claim_key(store, key) is None
    finish_key(store, "old-done", 202, {"jobId": "j1"})
    finish_key(store, "young-done", 202, {"jobId": "j2"})
    _age(store, "old-done", 3601)
    _age(store, "old-pending", 7200)  # its request died: it would answer `idempotency_in_progress` for ever
    _age(store, "young-done", 3000)
    # When the scheduler's sweep runs (twice, as two ticks would)
    first = app.tasks["idempotency.expire"].apply().get()
    second = app.tasks["idempotency.expire"].apply().get()
    # Then only the old keys are gone, and an expired key is a new request again
    assert (first, second) == ({"expired": 2}, {"expired": 0})
    assert _keys(store) == {"young-done", "young-pending"}
    assert claim_key(store, "old-done") is None  # claimed: the work runs again
    assert claim_key(store, "young-done").status_code == 202  # still replays its first answer


def test_one_pass_deletes_at_most_a_batch_oldest_first(app):
    from coachup.store.idempotency import expire_keys

    store = app.coachup.store
    for i in range(5):
        claim_key(store, f"k{i}")
        _age(store, f"k{i}", 4000 + i)
    assert expire_keys(store, 3600, batch=3) == 3
    assert _keys(store) == {"k0", "k1"}  # the three oldest went first
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(IdempotencyRow)) == 2


def test_expiry_deletes_the_same_keys_on_postgresql():
    from coachup.store import create_store
    from coachup.store.idempotency import expire_keys
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    try:
        store = create_store(pg.url)
        for key in ("old", "young"):
            claim_key(store, key)
        _age(store, "old", 4000)
        assert expire_keys(store, 3600) == 1 and _keys(store) == {"young"}
        store.engine.dispose()
    finally:
        pg.drop()
