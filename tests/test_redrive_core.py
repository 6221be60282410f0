"""The redrive orchestration and the store-backed dead-letter source, without a broker."""

from __future__ import annotations

import pytest

from coachup.deadletters import DeadLetter, DeadLetterSource, matches, safe_headers
from coachup.redrive import redrive
from coachup.store import create_store
from coachup.store.deadletters import StoreDeadLetters


def _letter(n: int, *, task: str = "assessments.run", redrives: int = 0, error: str = "timeout") -> DeadLetter:
    return DeadLetter(
        id=f"job-{n}.{redrives}",
        task_id=f"job-{n}",
        task=task,
        queue="assessments",
        reason="retries_exhausted",
        error_type=error,
        error_message="timed out",
        attempts=4,
        first_failure_at="2026-01-01T00:00:00.000Z",
        last_failure_at="2026-01-01T00:00:01.000Z",
        args=[f"job-{n}"],
        headers={"requestId": "r"},
        redrives=redrives,
    )


@pytest.fixture
def source(tmp_path):
    src = StoreDeadLetters(create_store(f"sqlite:///{tmp_path / 's.sqlite'}"))
    for n in range(5):
        src.add(_letter(n, task="stt.transcribe" if n == 4 else "assessments.run", error="x" if n == 3 else "timeout"))
    return src


def test_the_store_source_fits_the_seam_and_lists_newest_first(source):
    assert isinstance(source, DeadLetterSource)
    assert [x.id for x in source.list()] == [f"job-{n}.0" for n in (4, 3, 2, 1, 0)]
    assert [x.id for x in source.list(task="assessments.*", error="timeout", limit=2)] == ["job-2.0", "job-1.0"]
    assert source.add(_letter(1)) is False  # a redelivered record message stores nothing
    assert source.depth() == 5


def test_redrive_sends_oldest_first_then_removes_and_reports_progress(source):
    sent, progress = [], []
    report = redrive(
        source, sent.append, max_redrives=3, task="assessments.run", batch_size=2, progress=progress.append
    )
    assert [x.id for x in sent] == ["job-0.0", "job-1.0", "job-2.0", "job-3.0"]
    assert progress == [2, 2] and report.redriven == [x.id for x in sent]
    assert [x.id for x in source.list()] == ["job-4.0"]


def test_a_failed_send_keeps_the_letter_and_stops(source):
    def send(letter):
        if letter.id == "job-1.0":
            raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        redrive(source, send, max_redrives=3, task="assessments.run")
    assert source.get("job-0.0") is None and source.get("job-1.0") is not None


def test_dry_run_moves_nothing_and_the_redrive_limit_holds(source):
    assert redrive(source, None, max_redrives=3, dry_run=True).selected == 5
    source.add(_letter(9, redrives=3))
    report = redrive(source, lambda _l: None, max_redrives=3, task="assessments.run", limit=None)
    assert report.held == ["job-9.3"] and source.get("job-9.3").reason == "redrive_limit"


def test_rate_limits_messages_per_second(source):
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    redrive(source, lambda _l: None, max_redrives=3, rate=2.0, sleep=sleep, clock=lambda: now[0])
    assert sum(slept) == pytest.approx(2.0)  # 5 messages at 2/s: the last leaves at t=2 s


def test_filters_and_headers_keep_references_only():
    assert matches(_letter(1), task="assessments.*", error="retries_exhausted")
    assert not matches(_letter(1), task="assessments")
    assert safe_headers({"requestId": "r", "x-user-id": "alice", "transcript": "hi"}) == {"requestId": "r"}


def test_purge(source):
    assert source.purge() == 5 and source.depth() == 0


def test_stop_is_honoured_between_messages(source):
    sent = []
    report = redrive(source, sent.append, max_redrives=3, rate=1000.0, stop=lambda: len(sent) >= 2)
    assert report.interrupted and len(sent) == 2 and source.depth() == 3


def test_a_redriven_job_that_starts_removes_a_letter_a_crash_left_behind(source):
    assert source.remove("job-1.0") is True and source.remove("job-1.0") is False
