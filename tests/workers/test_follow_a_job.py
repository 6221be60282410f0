"""Follow a job (issue 17, point 4): its `taskId` and `requestId` on every log line of its life, the job
route's `requestId` and `deadLetterId`, and `coachup jobs show` with the grep that finds its lines.

The log lines come from Celery's in-process test worker running a real task (retries included); the job
route and the command read a real store.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

from click.testing import CliRunner

from coachup.cli.jobs import log_grep
from tests.support.wait import wait_until
from tests.test_redrive_core import _letter


def _grep_regex(command: str) -> re.Pattern:
    """The extended regex inside `grep -E '<regex>' ...` (what an operator pastes into a shell)."""
    return re.compile(re.match(r"grep -E '(.+)' ", command).group(1))


def test_every_log_line_of_a_job_carries_its_task_id_and_request_id(inproc):
    key, rid = str(uuid.uuid4()), str(uuid.uuid4())  # task id and request id differ, as after a redrive
    inproc.celery.send_task("testing.flaky", args=[key], task_id=key, ignore_result=True, headers={"requestId": rid})
    inproc.wait(lambda: inproc.effect(key), timeout=30, what="the flaky job to succeed")
    wait_until(
        lambda: [e for e in inproc.events("task_complete") if e.get("taskId") == key],
        timeout=10,
        what="its task_complete line",
    )
    mine = [e for e in inproc.events() if e.get("taskId") == key or e.get("requestId") == rid]

    assert {"task_start", "task_retry", "task_complete"} <= {e["event"] for e in mine}
    assert all((e.get("taskId"), e.get("requestId")) == (key, rid) for e in mine), mine
    # the grep `coachup jobs show` prints finds exactly those lines in the JSON-lines log
    pattern = _grep_regex(log_grep(key, rid))
    found = [line for line in inproc.lines if pattern.search(line)]
    assert len(found) == len(mine) and all(key in line for line in found)


def test_job_route_and_jobs_show_return_request_id_attempts_and_dead_letter(tmp_path):
    from coachup.owners import dev_owner
    from coachup.redaction import Hasher
    from coachup.settings import load_settings
    from coachup.store import create_store
    from coachup.store.deadletters import StoreDeadLetters
    from tests.conftest import TEST_HASH_SECRET
    from web import create_app

    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}",
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
    }
    store = create_store(env["COACHUP_DATABASE_URL"])
    rid = str(uuid.uuid4())
    # the jobs belong to the dev subject every unauthenticated request acts for (issue 13: owners)
    dev = dev_owner(Hasher(TEST_HASH_SECRET))
    done = store.create_job("stt", request_id=rid, owner=dev)
    store.mark_job(done, "done", result={"ok": True}, attempt=True)
    dead = store.create_job("stt", request_id=rid, owner=dev)
    store.mark_job(dead, "failed", error_type="upstream_rejected", error_message="400", attempt=True)
    StoreDeadLetters(store).add(dataclasses.replace(_letter(1), id=f"{dead}.0", task_id=dead))
    client = create_app(load_settings(env), configure_logs=False).test_client()

    ok = client.get(f"/api/v1/jobs/{done}").get_json()
    assert (ok["status"], ok["requestId"], ok["attempts"], ok["deadLetterId"]) == ("done", rid, 1, None)
    assert ok["createdAt"] and ok["updatedAt"] and ok["result"] == {"ok": True}  # existing fields stay
    failed = client.get(f"/api/v1/jobs/{dead}").get_json()
    assert (failed["status"], failed["deadLetterId"]) == ("failed", f"{dead}.0")

    shown = CliRunner().invoke(__import__("coachup.cli", fromlist=["main"]).main, ["jobs", "show", dead], env=env)
    assert shown.exit_code == 0, shown.output
    body, logs = shown.stdout.rsplit("\nlogs: ", 1)
    assert json.loads(body)["deadLetterId"] == f"{dead}.0" and json.loads(body)["requestId"] == rid
    assert _grep_regex(logs).search(json.dumps({"event": "task_start", "taskId": dead}))
    assert _grep_regex(logs).search(json.dumps({"event": "ingest", "requestId": rid}))
    missing = CliRunner().invoke(__import__("coachup.cli", fromlist=["main"]).main, ["jobs", "show", "nope"], env=env)
    assert missing.exit_code == 1 and "no job 'nope'" in missing.stderr
