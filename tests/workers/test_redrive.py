"""`coachup dlq redrive` against a real worker on Redis and on the embedded broker.

Given dead-lettered jobs whose cause is then fixed, when the operator redrives them (also when the
redrive is interrupted by Ctrl-C or killed half way), then every job succeeds exactly once and no
message is lost: each is either still dead-lettered or back on its queue.
"""

from __future__ import annotations

import json
import signal
import uuid

import pytest


def _dead_letters(drill, task: str, n: int) -> list[str]:
    keys = [drill.send(task) for _ in range(n)]
    for key in keys:
        drill.letter(key)
    return keys


def _redrive(drill, *args: str) -> dict:
    proc = drill.cli("dlq", "redrive", *args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_redrive_after_fixing_the_cause_runs_each_job_once(drill):
    keys = _dead_letters(drill, "testing.fixable", 3)
    for key in keys:
        drill.fix(key)

    preview = _redrive(drill, "--task", "testing.fixable", "--dry-run")
    assert preview["selected"] >= 3 and preview["redriven"] == 0
    assert all(drill.source.get(f"{k}.0") for k in keys)  # a dry run moves nothing

    # the letters died of a permanent error: redriving them after the fix is asked for by name
    report = _redrive(drill, "--task", "testing.fixable", "--limit", "3", "--include-permanent")

    assert set(report["redrivenIds"]) == {f"{k}.0" for k in keys}
    drill.wait(lambda: all(drill.effect(k) for k in keys), timeout=30, what="redriven jobs to succeed")
    assert [len(drill.runs(k)) for k in keys] == [2, 2, 2]  # the failed run, then exactly one success
    assert all(drill.source.get(f"{k}.0") is None for k in keys)


def test_a_job_redriven_too_often_stays_in_the_dead_letter_queue(drill):
    key = drill.send("testing.fixable")  # never fixed
    drill.letter(key)
    for n in (1, 2):  # COACHUP_MAX_REDRIVES=2
        _redrive(drill, "--task", "testing.fixable", "--error", "upstream_rejected", "--limit", "1")
        letter = drill.letter(key, redrives=n)
        assert letter.redrives == n and letter.headers["requestId"] == key  # the request id survives

    report = _redrive(drill, "--task", "testing.fixable", "--error", "upstream_rejected", "--limit", "1")

    assert report["held"] == 1 and report["redriven"] == 0
    assert drill.source.get(f"{key}.2").reason == "redrive_limit"
    assert len(drill.runs(key)) == 3


@pytest.mark.drill
def test_interrupted_redrive_loses_and_doubles_nothing(drill):
    keys = _dead_letters(drill, "testing.fixable", 16)
    for key in keys:
        drill.fix(key)

    def settled():
        """Every job is in exactly one place: the DLQ, or run to its effect after leaving it."""
        dead = {k for k in keys if drill.source.get(f"{k}.0") is not None}
        return all((k in dead) != drill.effect(k) for k in keys) and dead

    for sig in (signal.SIGINT, signal.SIGKILL):  # Ctrl-C, then a crash
        before = drill.source.depth()
        proc = drill.cli(
            "dlq", "redrive", "--task", "testing.fixable", "--include-permanent", "--rate", "4", "--batch-size", "2"
        )
        drill.wait(lambda before=before: drill.source.depth() <= before - 4, timeout=30, what="redrive to be under way")
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
        left = drill.wait(settled, timeout=30, what="each job in the DLQ or done, not both")
        assert 0 < len(left) < before

    _redrive(drill, "--task", "testing.fixable", "--include-permanent")

    drill.wait(lambda: all(drill.effect(k) for k in keys), timeout=60, what="every job to succeed")
    assert {len(drill.runs(k)) for k in keys} == {2}  # one failure, one success: nothing ran twice
    assert all(drill.source.get(f"{k}.0") is None for k in keys)


def test_redriven_assessment_whose_result_exists_is_not_stored_twice(drill):
    store = drill.celery.coachup.store
    session = f"sess-{uuid.uuid4().hex[:8]}"
    for i, text in enumerate(["I shipped the release on time.", "Next I will fix the flaky tests."]):
        store.ingest_turn(
            session_id=session,
            message_id=f"m{i}",
            role="user",
            content=text,
            ts=None,
            group_id="g1",
            end_reason="explicit" if i else None,
            max_turns=12,
        )
    job_id = store.create_job("assessment", session_id=session, group_id="g1")
    drill.celery.send_task("assessments.run", args=[job_id], task_id=job_id, headers={"requestId": job_id})
    drill.wait(lambda: store.get_job(job_id)["status"] == "done", timeout=30, what="assessment done")

    # Given a dead letter for that job (as if its result callback had failed after storing)
    from coachup.deadletters import DeadLetter

    rid = str(uuid.uuid4())
    drill.source.add(
        DeadLetter(
            id=f"{job_id}.0",
            task_id=job_id,
            task="assessments.run",
            queue="assessments",
            reason="retries_exhausted",
            error_type="upstream_unavailable",
            error_message="503",
            attempts=4,
            first_failure_at="2026-01-01T00:00:00.000Z",
            last_failure_at="2026-01-01T00:00:01.000Z",
            args=[job_id],
            headers={"requestId": rid},
        )
    )

    _redrive(drill, "--task", "assessments.*")

    drill.wait(
        lambda: [e for e in drill.worker.events("assessments_job_complete") if e.get("requestId") == rid],
        timeout=30,
        what="the redriven assessment to run",
    )
    assert store.count_assessments(session, "g1") == 1
    assert store.get_job(job_id)["status"] == "done"


def test_a_redrive_killed_between_send_and_delete_does_not_run_the_job_twice(drill):
    from coachup.redrive import redrive
    from workers.deadletter import redrive_sender

    # Given a dead-lettered job whose cause is fixed
    key = drill.send("testing.fixable")
    letter = drill.letter(key)
    drill.fix(key)

    # When a redrive sends it and is killed before deleting its letter (the real redrive, the real sender)
    class Killed(BaseException):
        pass

    class OnlyThisLetter(type(drill.source)):
        def list(self, **kw):  # other tests' letters stay out of this redrive
            return [x for x in super().list(**kw) if x.id == letter.id]

    at_crash: list[str] = []

    class DiesBeforeDelete(OnlyThisLetter):
        def remove(self, letter_id: str) -> bool:
            at_crash.append(letter_id)
            raise Killed

    store, send = drill.celery.coachup.store, redrive_sender(drill.celery)
    with pytest.raises(Killed):
        redrive(DiesBeforeDelete(store), send, max_redrives=2, include_permanent=True)  # fixable fails permanently
    # it died deleting this letter, after the send: the redrive itself removed nothing (whether the letter is
    # still there now is the worker's race: it may already have started the redriven job and dropped it)
    assert at_crash == [letter.id]

    # Then the worker that starts the redriven job drops that letter before running it (`_settle_redrive`) ...
    drill.wait(lambda: drill.effect(key), timeout=30, what="the redriven job to succeed")
    assert drill.source.get(letter.id) is None
    # ... so a second redrive finds nothing of it to send, and the job ran once more, not twice
    assert redrive(OnlyThisLetter(store), send, max_redrives=2, include_permanent=True).redriven == []
    assert len(drill.runs(key)) == 2  # the failed run, then exactly one success
