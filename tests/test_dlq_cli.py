"""`coachup dlq ls/show/purge` in-process (click's runner) against a real SQLite store."""

from __future__ import annotations

import json

from click.testing import CliRunner

from coachup.cli import main
from coachup.store import create_store
from coachup.store.deadletters import StoreDeadLetters
from tests.test_redrive_core import _letter


def _env(tmp_path) -> dict:
    return {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}",
        "COACHUP_BROKER_URL": "",
    }


def test_ls_show_and_purge(tmp_path):
    env = _env(tmp_path)
    source = StoreDeadLetters(create_store(env["COACHUP_DATABASE_URL"]))
    source.add(_letter(1))
    source.add(_letter(2, task="stt.transcribe"))
    runner = CliRunner()

    listed = json.loads(runner.invoke(main, ["dlq", "ls", "--json"], env=env).stdout)
    assert [x["id"] for x in listed] == ["job-2.0", "job-1.0"] and "args" not in listed[0]
    table = runner.invoke(main, ["dlq", "ls", "--task", "stt.*"], env=env).stdout
    assert "job-2.0" in table and "job-1.0" not in table
    shown = json.loads(runner.invoke(main, ["dlq", "show", "job-1.0"], env=env).stdout)
    assert shown["args"] == ["job-1"] and shown["headers"] == {"requestId": "r"}
    assert runner.invoke(main, ["dlq", "show", "nope"], env=env).exit_code == 1

    refused = runner.invoke(main, ["dlq", "purge"], env=env)
    assert refused.exit_code == 1 and source.depth() == 2
    assert "purged 2" in runner.invoke(main, ["dlq", "purge", "--yes"], env=env).output
    assert "empty" in runner.invoke(main, ["dlq", "ls"], env=env).output


def test_ls_shows_pending_ledger_markers_apart_from_recorded_letters(tmp_path, store_url):
    """A letter the dying worker wrote to the ledger but `deadletter.record` has not stored yet is listed as
    pending (table section and `state` in JSON), with its sends; once recorded it moves to the recorded list."""
    env = {**_env(tmp_path), "COACHUP_DATABASE_URL": store_url}
    source = StoreDeadLetters(create_store(store_url))
    source.add(_letter(1))
    waiting = _letter(2, task="stt.transcribe")
    assert source.ledger(waiting)
    runner = CliRunner()

    table = runner.invoke(main, ["dlq", "ls"], env=env)
    assert table.exit_code == 0, table.output
    recorded_part, _, pending_part = table.stdout.partition("pending: 1 letter(s)")
    assert "job-1.0" in recorded_part and "job-2.0" not in recorded_part
    assert "job-2.0" in pending_part and "stt.transcribe" in pending_part and "SENDS" in pending_part

    listed = json.loads(runner.invoke(main, ["dlq", "ls", "--json"], env=env).stdout)
    assert [(x["id"], x["state"]) for x in listed] == [("job-1.0", "recorded"), ("job-2.0", "pending")]
    assert listed[1]["sends"] == 1 and "args" not in listed[1]
    only_pending = runner.invoke(main, ["dlq", "ls", "--task", "stt.*"], env=env).stdout
    assert "no recorded dead letters" in only_pending and "job-2.0" in only_pending

    assert source.add(waiting, ledgered=True)  # the record task stores it: no longer pending
    after = json.loads(runner.invoke(main, ["dlq", "ls", "--json"], env=env).stdout)
    assert sorted((x["id"], x["state"]) for x in after) == [("job-1.0", "recorded"), ("job-2.0", "recorded")]
    assert "pending:" not in runner.invoke(main, ["dlq", "ls"], env=env).stdout
