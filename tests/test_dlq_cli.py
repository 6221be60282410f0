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
