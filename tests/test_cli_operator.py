"""The CLI says what it reads and refuses to guess (issue 17, point 1 and the sharp edges of point 6).

Each command runs in-process (click's runner) against real parts: a SQLite store, a moto SQS server, an
unreachable PostgreSQL port. stderr carries the banner and errors; stdout stays the command's answer.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from coachup.cli import main
from coachup.store import create_store
from coachup.store.deadletters import StoreDeadLetters
from tests.conftest import TEST_HASH_SECRET
from tests.test_redrive_core import _letter

# a process environment with none of the service's variables (what an on-call shell looks like)
BARE = {
    "COACHUP_ENV": "",
    "COACHUP_BROKER_URL": "",
    "COACHUP_DATABASE_URL": "",
    "COACHUP_HASH_SECRET": "",
    "AUTH_JWKS_URL": "",
}


def _run(args, env=None):
    return CliRunner().invoke(main, args, env={**BARE, **(env or {})})


def _store_env(tmp_path) -> dict:
    return {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite'}"}


def test_outside_dev_a_command_that_would_use_a_dev_default_refuses_naming_the_variable(tmp_path):
    staging = {"COACHUP_ENV": "staging", "COACHUP_DATA_DIR": str(tmp_path)}
    no_broker = _run(["dlq", "ls"], staging)
    assert no_broker.exit_code == 1
    assert "COACHUP_BROKER_URL is not set and COACHUP_ENV=staging" in no_broker.stderr
    assert "Traceback" not in no_broker.output and no_broker.stdout == ""

    no_store = _run(["queues"], {**staging, "COACHUP_BROKER_URL": "redis://127.0.0.1:9/0"})
    assert no_store.exit_code == 1 and "COACHUP_DATABASE_URL is not set" in no_store.stderr
    assert not (tmp_path / "coachup.sqlite").exists()  # nothing was created on the way to refusing

    production = _run(["db", "init"], {"COACHUP_ENV": "production", "COACHUP_DATA_DIR": str(tmp_path)})
    assert production.exit_code == 1 and len(production.stderr.strip().splitlines()) == 1


def test_env_file_points_the_cli_at_a_deployment_and_the_banner_names_broker_and_store_redacted(tmp_path):
    store = _store_env(tmp_path)["COACHUP_DATABASE_URL"]
    StoreDeadLetters(create_store(store)).add(_letter(1))
    env_file = tmp_path / "staging.env"
    env_file.write_text(
        "# the deployment's settings\n"
        "export COACHUP_ENV=staging\n"
        "COACHUP_BROKER_URL='redis://:s3cret-pw@127.0.0.1:9/0'\n"
        f'COACHUP_DATABASE_URL="{store}"\n'
        f"COACHUP_HASH_SECRET={TEST_HASH_SECRET}\n"
        f"COACHUP_DATA_DIR={tmp_path}\n"
    )
    # the shell has none of these: without the file the same command refuses
    assert _run(["dlq", "ls"], {"COACHUP_ENV": "staging"}).exit_code == 1

    result = _run(["--env-file", str(env_file), "dlq", "ls", "--json"])
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("coachup: env staging; broker redis (redis://***@127.0.0.1:9/0); store sqlite:///")
    assert "s3cret-pw" not in result.output
    assert [x["id"] for x in json.loads(result.stdout)] == ["job-1.0"]


def test_a_bad_env_file_line_is_one_line_with_file_and_line_number(tmp_path):
    env_file = tmp_path / "broken.env"
    env_file.write_text("COACHUP_ENV=staging\nthis is not an assignment\n")
    result = _run(["--env-file", str(env_file), "queues"])
    assert result.exit_code == 1 and f"{env_file}:2: expected KEY=VALUE" in result.stderr


def test_an_unreachable_store_is_one_line_naming_the_endpoint_and_debug_shows_the_traceback(tmp_path):
    env = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_DATABASE_URL": "postgresql://ops:pw-secret@127.0.0.1:1/nope"}
    result = _run(["db", "init"], env)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("coachup: env dev;")  # the banner, then one error line
    assert "store initialisation failed: OperationalError" in lines[1]
    assert "postgresql+psycopg://***@127.0.0.1:1/nope (COACHUP_DATABASE_URL)" in lines[1]
    assert "pw-secret" not in result.output and "Traceback" not in result.output

    debug = _run(["--debug", "db", "init"], env)
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "OperationalError"


def test_version():
    result = _run(["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("coachup ")
    assert result.stdout.split()[1][0].isdigit()


def test_an_unsupported_broker_scheme_is_refused_with_one_line(tmp_path):
    result = _run(["queues"], {**_store_env(tmp_path), "COACHUP_BROKER_URL": "amqp://guest@127.0.0.1:5672//"})
    assert result.exit_code == 1
    assert "COACHUP_BROKER_URL amqp:// is not a supported broker" in result.stderr
    assert "Traceback" not in result.output


def test_queues_before_sqs_bootstrap_says_so_and_exits_non_zero(moto_sqs, tmp_path):
    from tests.support.moto import sqs_stack_env

    env = {**_store_env(tmp_path), **sqs_stack_env(moto_sqs, "nobootstrap"), "COACHUP_HASH_SECRET": TEST_HASH_SECRET}
    result = _run(["queues"], env)
    assert result.exit_code == 1
    assert "do not exist on the sqs broker" in result.stderr and "coachup sqs bootstrap" in result.stderr
    assert result.stdout == ""


def _letters(tmp_path) -> StoreDeadLetters:
    source = StoreDeadLetters(create_store(_store_env(tmp_path)["COACHUP_DATABASE_URL"]))
    source.add(_letter(1))
    source.add(dataclasses.replace(_letter(2), reason="permanent", error_type="validation"))
    return source


def test_redrive_holds_permanent_letters_back_unless_asked_and_dry_run_lists_ids(tmp_path):
    source = _letters(tmp_path)
    env = _store_env(tmp_path)
    dry = _run(["dlq", "redrive", "--dry-run"], env)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["wouldRedriveIds"] == ["job-1.0"] and report["keptPermanentIds"] == ["job-2.0"]
    assert report["redriven"] == 0
    assert "would redrive:\n  job-1.0" in dry.stderr and "job-2.0" in dry.stderr
    assert source.depth() == 2  # a dry run moves nothing

    everything = json.loads(_run(["dlq", "redrive", "--dry-run", "--include-permanent"], env).stdout)
    assert sorted(everything["wouldRedriveIds"]) == ["job-1.0", "job-2.0"] and everything["keptPermanentIds"] == []
    asked = json.loads(_run(["dlq", "redrive", "--dry-run", "--error", "permanent"], env).stdout)
    assert asked["wouldRedriveIds"] == ["job-2.0"]


def test_purge_filters_by_task_error_and_age_and_dry_run_lists_ids(tmp_path):
    source = _letters(tmp_path)
    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    source.add(dataclasses.replace(_letter(3, task="stt.transcribe"), last_failure_at=recent))
    env = _store_env(tmp_path)

    refused = _run(["dlq", "purge", "--task", "stt.*"], env)
    assert refused.exit_code == 1 and source.depth() == 3
    dry = _run(["dlq", "purge", "--older-than", "1h", "--dry-run"], env)
    assert dry.exit_code == 0 and "would purge 2" in dry.stdout
    assert "job-1.0" in dry.stderr and "job-2.0" in dry.stderr and "job-3.0" not in dry.stderr
    assert source.depth() == 3

    assert "purged 1" in _run(["dlq", "purge", "--error", "permanent", "--yes"], env).stdout
    assert {x.id for x in source.list()} == {"job-1.0", "job-3.0"}
    assert "purged 1" in _run(["dlq", "purge", "--task", "assessments.*", "--older-than", "1d", "--yes"], env).stdout
    assert [x.id for x in source.list()] == ["job-3.0"]
    bad = _run(["dlq", "purge", "--older-than", "soon", "--yes"], env)
    assert bad.exit_code == 2 and "--older-than" in bad.stderr


def test_a_second_worker_on_a_taken_metrics_port_refuses_to_start(tmp_path):
    import socket

    with socket.socket() as first_worker:  # the first worker's metrics endpoint
        first_worker.bind(("127.0.0.1", 0))
        first_worker.listen()
        port = first_worker.getsockname()[1]
        env = {**_store_env(tmp_path), "COACHUP_BROKER_URL": "redis://127.0.0.1:9/0"}
        result = _run(["worker", "-Q", "stt"], {**env, "COACHUP_WORKER_METRICS_PORT": str(port)})
    assert result.exit_code == 1
    assert f"COACHUP_WORKER_METRICS_PORT {port} on 127.0.0.1 is taken" in result.stderr


def test_worker_metrics_bind_the_loopback_by_default():
    from coachup.settings import load_settings

    assert load_settings({}).worker_metrics_host == "127.0.0.1"
