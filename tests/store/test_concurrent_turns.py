"""Turns of one session arriving at once are written one after another (SQLite and PostgreSQL).

Given 8 turns of one session sent at the same instant from 8 threads (8 connections), many times over,
then every round lands in one group numbered 0..7 without gap or repeat, each answer carries a distinct
turn count 1..8, and a closing turn among them never closes a group a later turn of it is written to.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
from sqlalchemy import select

from coachup.store import create_store
from coachup.store.models import InteractionGroup

ROUNDS = 30
TURNS = 8


def _fire(store, session_id: str, turns: list[tuple[str, str, str | None]]) -> list:
    """Send every (message id, role, end reason) at once; the outcomes in input order."""
    barrier = threading.Barrier(len(turns))
    outcomes: list = [None] * len(turns)
    errors: list[BaseException] = []

    def send(i: int, message_id: str, role: str, end_reason: str | None) -> None:
        barrier.wait()
        try:
            outcomes[i] = store.ingest_turn(
                session_id=session_id,
                message_id=message_id,
                role=role,
                content=f"turn {message_id}",
                ts=None,
                group_id=None,
                end_reason=end_reason,
                max_turns=50,
            )
        except BaseException as exc:  # the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i, *t)) for i, t in enumerate(turns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return outcomes


def _groups(store, session_id: str) -> dict[str, list]:
    with store.session() as s:
        ids = s.scalars(select(InteractionGroup.group_id).where(InteractionGroup.session_id == session_id)).all()
    return {g: store.load_turns(session_id, g) for g in ids}


@pytest.fixture
def store(store_url):
    store = create_store(store_url)
    yield store
    store.engine.dispose()


def test_eight_turns_at_once_land_in_one_group_with_gap_free_seq(store):
    failures = []
    for r in range(ROUNDS):
        session_id = f"burst-{r}"
        outcomes = _fire(store, session_id, [(f"m{i}", "user", None) for i in range(TURNS)])
        groups = _groups(store, session_id)
        ok = (
            len(groups) == 1
            and len({o.group_id for o in outcomes}) == 1
            and sorted(o.turn_count for o in outcomes) == list(range(1, TURNS + 1))
            and [t.seq for t in next(iter(groups.values()))] == list(range(TURNS))
            and store.group_info(session_id, outcomes[0].group_id)["turnCount"] == TURNS
        )
        if not ok:
            failures.append((session_id, {g: [t.seq for t in ts] for g, ts in groups.items()}))
    print(f"\n{store.engine.dialect.name}: {ROUNDS} rounds x {TURNS} turns, {len(failures)} failed")
    assert failures == []


def test_a_closing_turn_among_them_ends_only_what_was_written_before_it(store):
    failures = []
    for r in range(ROUNDS):
        session_id = f"closing-{r}"
        turns = [(f"u{i}", "user", None) for i in range(TURNS - 1)] + [("bye", "assistant", "closing_cue")]
        outcomes = _fire(store, session_id, turns)
        groups = _groups(store, session_id)
        by_group = defaultdict(list)
        for o in outcomes:
            by_group[o.group_id].append(o.turn_count)
        closing = outcomes[-1]
        problems = []
        if sum(len(t) for t in groups.values()) != TURNS or len(groups) > 2:
            problems.append("turns lost, doubled or spread over more than two groups")
        for group_id, stored in groups.items():
            if [t.seq for t in stored] != list(range(len(stored))):
                problems.append(f"{group_id}: seq {[t.seq for t in stored]}")
            if sorted(by_group[group_id]) != list(range(1, len(stored) + 1)):
                problems.append(f"{group_id}: answered turn counts {sorted(by_group[group_id])}")
        if closing.closed_now:
            ended = groups[closing.group_id]
            if ended[-1].message_id != "bye" or store.group_info(session_id, closing.group_id)["state"] != "idle":
                problems.append("a turn was written to the group after its closing turn")
        elif closing.turn_count != 1 or len(groups) != 1:
            # not closing is only right when the reply came first, into a group without user speech
            problems.append("the closing turn did not close a group that had user speech")
        if problems:
            failures.append((session_id, problems))
    print(f"\n{store.engine.dialect.name}: {ROUNDS} rounds x {TURNS} turns with a closing turn, {len(failures)} failed")
    assert failures == []
