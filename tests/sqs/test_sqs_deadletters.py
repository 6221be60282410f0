"""Dead letters on SQS: `coachup dlq` over each queue's own DLQ, against the moto server and a real worker.

Given test tasks that fail permanently, SQS's RedrivePolicy moves them to the DLQ after maxReceiveCount (2)
receives; `dlq ls/show` peek without consuming; `dlq redrive` after fixing the cause runs each job once more,
keeps its FIFO group with a fresh dedup id, holds a job redriven too often, and a killed redrive loses nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from coachup.sqs.deadletters import CLAIM_S, SqsDeadLetters
from tests.support.sqs_letters import put_dead_letter
from tests.support.sqs_stack import SqsStack, dlq_messages
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ops-token-" + uuid.uuid4().hex
ADMIN = {"authorization": f"Bearer {TOKEN}"}


class Drill:
    """The SQS stack plus the helpers of `tests/workers/conftest.py::DrillStack`, for `testing.*` tasks."""

    def __init__(self, stack: SqsStack) -> None:
        self.stack, self.data_dir = stack, stack.data_dir
        self.source = SqsDeadLetters(stack.settings)

    def send(self, task: str = "testing.fixable", group: str | None = None) -> str:
        key = str(uuid.uuid4())
        self.stack.runtime.celery.send_task(
            task,
            args=[key],
            task_id=key,
            ignore_result=True,
            headers={"requestId": key},
            MessageGroupId=group or f"g:{key[:8]}",
            MessageDeduplicationId=f"d:{key}",
        )
        return key

    def letter(self, key: str, redrives: int = 0, timeout: float = 90):
        def probe():
            return next(
                (x for x in self.source.list(task="testing.*") if x.task_id == key and x.redrives == redrives), None
            )

        return wait_until(probe, timeout=timeout, interval=0.5, what=f"dead letter {key}.{redrives}")

    def fix(self, key: str) -> None:
        folder = self.data_dir / "testing" / "fixed"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key).touch()

    def runs(self, key: str) -> int:
        path = self.data_dir / "testing" / "runs" / key
        return len(path.read_text().splitlines()) if path.exists() else 0

    def effect(self, key: str) -> bool:
        return (self.data_dir / "testing" / "effects" / key).exists()

    def cli(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "coachup.cli", "dlq", *args],
            env={**os.environ, **self.stack.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )

    def run_cli(self, *args: str) -> str:
        proc = self.cli(*args)
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        return out

    def redrive(self, *args: str) -> dict:
        return json.loads(self.run_cli("redrive", *args).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def drill(tmp_path_factory, moto_sqs):
    stack = SqsStack(
        tmp_path_factory,
        moto_sqs,
        "dlq",
        1,
        COACHUP_TEST_TASKS="1",
        COACHUP_SQS_MAX_RECEIVE_COUNT="2",
        COACHUP_MAX_REDRIVES="2",
        COACHUP_ADMIN_TOKEN=TOKEN,
    )
    yield Drill(stack)
    stack.stop()


def test_a_permanent_failure_reaches_the_dlq_and_ls_does_not_consume_it(drill):
    key = drill.send(group="g:peek")
    letter = drill.letter(key)

    assert drill.runs(key) == 2  # maxReceiveCount failed runs, then SQS moved it
    assert (letter.task, letter.task_id, letter.queue, letter.args) == ("testing.fixable", key, "assessments", [key])
    assert letter.group_id == "g:peek" and letter.headers["requestId"] == key
    assert (letter.reason, letter.error_type, letter.attempts, letter.redrives) == ("max_receives", "unknown", 2, 0)
    assert letter.first_failure_at <= letter.last_failure_at

    listed = json.loads(drill.run_cli("ls", "--task", "testing.fixable", "--error", "unknown", "--json"))
    assert letter.id in [x["id"] for x in listed]
    assert json.loads(drill.run_cli("ls", "--task", "assessments.*", "--json")) == []
    shown = json.loads(drill.run_cli("show", letter.id))
    assert shown["args"] == [key] and shown["id"] == letter.id  # the id is stable across receives

    # still there, visible at once, after all those peeks
    assert letter.id in [m["MessageId"] for m in dlq_messages(drill.stack.settings)]
    assert drill.source.get(letter.id) is not None and drill.source.depth() >= 1
    ops = drill.stack.client.get("/api/v1/ops/deadletters?task=testing.fixable", headers=ADMIN)
    assert ops.status_code == 200 and letter.id in [x["id"] for x in ops.get_json()["items"]]
    assert ops.get_json()["depth"] >= 1
    preview = drill.stack.client.post(
        "/api/v1/ops/deadletters/redrive", headers=ADMIN, json={"task": "testing.fixable", "dryRun": True}
    )
    assert preview.status_code == 200 and preview.get_json()["selected"] >= 1
    assert drill.source.get(letter.id) is not None


def test_redrive_after_fixing_the_cause_runs_each_job_once(drill):
    keys = [drill.send() for _ in range(3)]
    letters = {k: drill.letter(k) for k in keys}
    for key in keys:
        drill.fix(key)

    preview = drill.redrive("--task", "testing.fixable", "--dry-run")
    assert preview["selected"] >= 3 and preview["redriven"] == 0
    assert all(drill.source.get(x.id) for x in letters.values())  # a dry run moves nothing

    report = drill.redrive("--task", "testing.fixable")

    assert {x.id for x in letters.values()} <= set(report["redrivenIds"])
    wait_until(lambda: all(drill.effect(k) for k in keys), timeout=60, what="redriven jobs to succeed")
    assert [drill.runs(k) for k in keys] == [3, 3, 3]  # two failed receives, then exactly one success
    assert all(drill.source.get(x.id) is None for x in letters.values())


def test_redrive_keeps_the_fifo_group_and_holds_a_job_redriven_too_often(drill):
    purged = drill.run_cli("purge", "--yes")  # what earlier tests left: one by one (moto: 1 PurgeQueue/60 s)
    assert purged.startswith("purged ") and drill.source.depth() == 0
    key = drill.send(group="g:stubborn")  # never fixed
    first = drill.letter(key)
    raw = {m["MessageId"]: m for m in dlq_messages(drill.stack.settings)}[first.id]
    seen_dedup = {raw["Attributes"]["MessageDeduplicationId"]}
    for n in (1, 2):  # COACHUP_MAX_REDRIVES=2
        drill.redrive("--task", "testing.fixable", "--error", "max_receives", "--limit", "1")
        letter = drill.letter(key, redrives=n)
        raw = {m["MessageId"]: m for m in dlq_messages(drill.stack.settings)}[letter.id]
        assert raw["Attributes"]["MessageGroupId"] == "g:stubborn"  # same group ...
        assert raw["Attributes"]["MessageDeduplicationId"] not in seen_dedup  # ... fresh dedup id
        seen_dedup.add(raw["Attributes"]["MessageDeduplicationId"])
        assert letter.headers["requestId"] == key and letter.id != first.id

    report = drill.redrive("--task", "testing.fixable", "--error", "redrive_limit")

    assert report["held"] == 1 and report["redriven"] == 0
    assert drill.letter(key, redrives=2).reason == "redrive_limit"  # still in the DLQ
    assert drill.runs(key) == 6


def test_a_redriven_assessment_whose_result_exists_is_not_stored_twice(drill):
    stack = drill.stack
    session = f"sess-{uuid.uuid4().hex[:8]}"
    accepted = stack.run(session, "I shipped the release on time and fixed the flaky tests.")
    wait_until(lambda: stack.job(accepted["taskId"])["status"] == "done", timeout=60, what="assessment done")
    # Given a dead letter for that job (as if it had failed after storing its result)
    rid = str(uuid.uuid4())
    put_dead_letter(
        stack.settings, "assessments.run", accepted["taskId"], [accepted["taskId"]], group="s:twice", requestId=rid
    )

    report = drill.redrive("--task", "assessments.*")

    assert report["redriven"] == 1
    wait_until(
        lambda: [e for e in stack.events("assessments_job_complete") if e.get("requestId") == rid],
        timeout=60,
        what="the redriven assessment to run",
    )
    assert stack.runtime.store.count_assessments(session, accepted["groupId"]) == 1
    assert stack.job(accepted["taskId"])["status"] == "done"


@pytest.mark.drill
def test_a_killed_redrive_loses_nothing(drill):
    keys = [drill.send() for _ in range(8)]
    ids = {k: drill.letter(k).id for k in keys}
    for key in keys:
        drill.fix(key)
    before = drill.source.depth()

    proc = drill.cli("redrive", "--task", "testing.fixable", "--rate", "2", "--batch-size", "2")
    wait_until(lambda: drill.source.depth() <= before - 2, timeout=60, what="redrive to be under way")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)

    # within CLAIM_S every message it had claimed is visible in the DLQ again: each job in the DLQ or done
    wait_until(
        lambda: len(drill.source.list(task="testing.fixable")) == drill.source.depth(),
        timeout=CLAIM_S + 30,
        interval=1,
        what="claimed messages back in the DLQ",
    )
    left = {x.task_id for x in drill.source.list(task="testing.fixable")}
    wait_until(lambda: all(k in left or drill.effect(k) for k in keys), timeout=60, what="each job somewhere")
    assert 0 < len(left) < len(keys)

    drill.redrive("--task", "testing.fixable")

    wait_until(lambda: all(drill.effect(k) for k in keys), timeout=90, what="every job to succeed")
    assert all(drill.source.get(i) is None for i in ids.values())
    assert all(drill.runs(k) >= 3 for k in keys)


def test_flaky_task_succeeds_on_attempt_3_with_growing_backoffs(drill):
    # Given a task that fails retryably twice, on a FIFO SQS queue
    key = drill.send("testing.flaky")

    # When it runs, then it succeeds on attempt 3 and nothing reaches the DLQ
    wait_until(lambda: drill.effect(key), timeout=90, interval=0.2, what="flaky task to succeed on SQS")
    assert drill.runs(key) == 3
    assert not [x for x in drill.source.list(task="testing.*") if x.task_id == key]

    # And each retry was logged with a growing backoff (the gaps themselves include moto's receive polling)
    def retries():
        found = [e for w in drill.stack.workers for e in w.events("task_retry") if e.get("requestId") == key]
        return found if len(found) == 2 else None

    events = sorted(wait_until(retries, timeout=10, what="two retry events"), key=lambda e: e["attempt"])
    assert [e["attempt"] for e in events] == [1, 2]
    assert events[0]["backoff_ms"] < events[1]["backoff_ms"]
