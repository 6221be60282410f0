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


def _permanent_source(tmp_path):
    src = StoreDeadLetters(create_store(f"sqlite:///{tmp_path / 'p.sqlite'}"))
    src.add(_letter(0))
    permanent = _letter(1, error="bad_input")
    src.add(DeadLetter(**{**permanent.to_dict(), "reason": "permanent"}))
    src.add(_letter(2, redrives=3))
    return src


def test_a_permanent_failure_stays_unless_asked_for_and_the_report_says_what_happened(tmp_path):
    # Given one retryable letter, one that died of a permanent error and one over the redrive limit
    src = _permanent_source(tmp_path)
    sent = []
    report = redrive(src, sent.append, max_redrives=3)
    # Then only the retryable one is sent; the permanent one stays where it was, the third is held
    assert [x.id for x in sent] == ["job-0.0"]
    assert report.to_dict() == {
        "selected": 3,
        "redriven": 1,
        "held": 1,
        "keptPermanent": 1,
        "dryRun": False,
        "interrupted": False,
        "redrivenIds": ["job-0.0"],
        "heldIds": ["job-2.3"],
        "keptPermanentIds": ["job-1.0"],
        "wouldRedriveIds": [],
        "wouldHoldIds": [],
    }
    assert src.get("job-1.0").reason == "permanent" and src.get("job-2.3").reason == "redrive_limit"


@pytest.mark.parametrize(
    ("ask", "expected"),
    [
        ({"include_permanent": True}, ["job-0.0", "job-1.0"]),
        ({"error": "permanent"}, ["job-1.0"]),  # the reason as the filter: only the permanent letters
        ({"error": "bad_input"}, ["job-1.0"]),  # its error type: the same one
    ],
)
def test_a_permanent_failure_is_redriven_when_asked_for(tmp_path, ask, expected):
    src = _permanent_source(tmp_path)
    sent = []
    report = redrive(src, sent.append, max_redrives=3, **ask)
    assert [x.id for x in sent] == expected and report.kept_permanent == []
    assert src.get("job-1.0") is None and src.get("job-2.3") is not None


def test_a_dry_run_lists_what_would_happen_and_touches_nothing(tmp_path):
    src = _permanent_source(tmp_path)
    report = redrive(src, None, max_redrives=3, dry_run=True)  # a send that would fail if it were called
    assert (report.would_redrive, report.would_hold, report.kept_permanent) == (["job-0.0"], ["job-2.3"], ["job-1.0"])
    assert report.dry_run and report.redriven == [] and report.held == []
    assert src.depth() == 3 and src.get("job-2.3").reason == "retries_exhausted"  # not even held


def test_batches_of_one_redrive_every_letter(source):
    sent, progress = [], []
    redrive(source, sent.append, max_redrives=3, batch_size=1, progress=progress.append)
    assert [x.id for x in sent] == [f"job-{n}.0" for n in range(5)] and progress == [1] * 5


def test_limit_takes_the_oldest_letters(source):
    sent = []
    report = redrive(source, sent.append, max_redrives=3, limit=2)
    assert [x.id for x in sent] == ["job-0.0", "job-1.0"] and report.selected == 2
    assert source.depth() == 3


def test_a_stop_before_the_first_batch_sends_nothing(source):
    sent = []
    report = redrive(source, sent.append, max_redrives=3, stop=lambda: True)
    assert report.interrupted and sent == [] and source.depth() == 5


def test_a_stop_between_batches_finishes_the_batch_in_flight(source):
    sent = []
    report = redrive(source, sent.append, max_redrives=3, batch_size=2, stop=lambda: len(sent) >= 1)
    assert report.interrupted and [x.id for x in sent] == ["job-0.0", "job-1.0"] and source.depth() == 3


def test_the_rate_spaces_departures_from_the_start(source):
    # Given a clock that advances only when the redrive sleeps
    now = [10.0]
    departures = []

    def sleep(s):
        now[0] += s

    redrive(source, lambda _l: departures.append(now[0]), max_redrives=3, rate=4.0, sleep=sleep, clock=lambda: now[0])
    # Then the first leaves at once and each next one a quarter second after the previous
    assert departures == pytest.approx([10.0, 10.25, 10.5, 10.75, 11.0])


def test_a_slow_broker_is_not_made_slower_by_the_rate(source):
    # Given a send that itself takes longer than the rate's spacing
    now = [0.0]
    slept = []

    def send(_letter):
        now[0] += 1.0

    redrive(source, send, max_redrives=3, rate=4.0, sleep=slept.append, clock=lambda: now[0])
    assert slept == []  # never behind schedule, so never a sleep


def test_older_than_reads_utc_times_and_refuses_unreadable_ones():
    from datetime import UTC, datetime

    from coachup.redrive import older_than

    cutoff = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    letter = _letter(1)  # last failure 2026-01-01T00:00:01.000Z
    assert older_than(letter, cutoff.replace(second=2))
    assert not older_than(letter, cutoff)  # the same instant is not older
    naive = DeadLetter(**{**letter.to_dict(), "last_failure_at": "2026-01-01T00:00:00"})  # read as UTC
    assert older_than(naive, cutoff)
    offset = DeadLetter(**{**letter.to_dict(), "last_failure_at": "2026-01-01T01:00:00+02:00"})  # 23:00 the day before
    assert older_than(offset, cutoff)
    assert not older_than(DeadLetter(**{**letter.to_dict(), "last_failure_at": "yesterday"}), cutoff.replace(year=2030))


def test_discard_deletes_the_letters_and_sends_nothing(source):
    from coachup.redrive import discard

    gone = discard(source, source.list(task="stt.*"))
    assert gone == ["job-4.0"] and source.get("job-4.0") is None and source.depth() == 4
