"""`make mutation`: mutmut on one defence module at a time, each against the narrowest tests that guard it.

mutmut reads one `[tool.mutmut]` (pyproject.toml); its `only_mutate` and test selection there cover every
defence module. Scoring one module against every guarding test would run the whole selection once for the
coverage map, so this runs mutmut with that section narrowed to one entry of MODULES:

    .venv/bin/python -m tests.mutation redaction run            # mutate and score coachup/redaction.py
    .venv/bin/python -m tests.mutation redaction results        # list the survivors
    .venv/bin/python -m tests.mutation redaction run 'coachup.redaction.x_scrub*'

Any mutmut command works after the module name (`show <mutant>`, `results --all true`). Every module shares
the one `mutants/` directory: `make mutation` empties it before each module.
"""

from __future__ import annotations

import dataclasses
import sys

# module name -> (files to mutate, the tests that guard them)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "redaction": (["coachup/redaction.py"], ["tests/test_redaction.py"]),
    "jwt_auth": (["web/jwt_auth.py"], ["tests/reliability/test_auth.py", "tests/web/test_jwt_verifier.py"]),
    "fetch": (["coachup/speech/fetch.py"], ["tests/speech/test_fetch.py", "tests/speech/test_fetch_https.py"]),
    "redrive": (
        ["coachup/redrive.py", "workers/guard.py", "workers/deadletter.py"],
        ["tests/test_redrive_core.py", "tests/workers/test_safe_errors.py", "tests/workers/test_deadletter_publish.py"],
    ),
    "sqs_transport": (
        ["workers/sqs_transport.py"],
        ["tests/sqs/test_sqs_transport.py", "tests/sqs/test_sqs_transport_checks.py"],
    ),
    # the FIFO options of each publish (the rest of the broker adapter talks to SQS: moto tests, not scored here)
    "sqs_options": (
        ["workers/brokers/sqs.py"],
        ["tests/sqs/test_sqs_settings.py", "tests/sqs/test_sqs_fifo_options.py"],
    ),
    # the idempotency of results: request keys, and one assessment summary per group
    "idempotency": (
        ["coachup/store/idempotency.py", "coachup/store/repo.py"],
        ["tests/store/test_idempotency_keys.py", "tests/store/test_repo.py"],
    ),
    # issue 16's dead letters: building and publishing a letter, its ledger marker, the sweep and redrive sender
    "deadletter": (
        ["workers/deadletter.py"],
        [
            "tests/workers/test_deadletter_publish.py",
            "tests/workers/test_deadletter_ledger.py",
            "tests/workers/test_deadletter_record_timeout.py",
            "tests/workers/test_deadletter_letters.py",
            "tests/sqs/test_sqs_redrive_sender.py",
        ],
    ),
    "ledger": (
        ["coachup/store/deadletters.py", "workers/tasks/deadletters.py"],
        ["tests/workers/test_deadletter_ledger.py", "tests/workers/test_deadletter_publish.py"],
    ),
    # issue 16's outbox: claim, mark, release in the store; the relay pass, its thread and the one publish call
    "outbox": (
        ["coachup/store/outbox.py", "workers/relay.py", "workers/publish.py"],
        [
            "tests/store/test_outbox.py",
            "tests/workers/test_outbox_relay.py",
            "tests/workers/test_relay_thread.py",
            "tests/sqs/test_sqs_relay_publish.py",
        ],
    ),
    # the failure table (workers/guard.py), driven in-process the way a worker calls a task
    "guard": (
        ["workers/guard.py"],
        ["tests/workers/test_guard.py", "tests/workers/test_deadletter_publish.py"],
    ),
}
# the mutants a bare `run` tries, for a module scored only in part (MUTANTS on the command line overrides)
DEFAULT_MUTANTS: dict[str, list[str]] = {
    "sqs_options": [
        "workers.brokers.sqs.*publish_options*",
        "workers.brokers.sqs.*retry_options*",
        "workers.brokers.sqs.*redrive_options*",
    ],
    "idempotency": ["coachup.store.idempotency.*", "coachup.store.repo.*save_assessment*"],
    # the ledger and the record/resend tasks (the rest of the store's DLQ is `coachup dlq`'s, not scored here)
    "ledger": [
        "coachup.store.deadletters.*ledger*",
        "coachup.store.deadletters.*unrecorded*",
        "coachup.store.deadletters.*claim_resend*",
        "coachup.store.deadletters.*pending*",
        "coachup.store.deadletters.*ǁadd*",
        "workers.tasks.deadletters.*",
    ],
    # the defences: one message per FIFO receive, the unreadable-message check, the release of a failed
    # message for the RedrivePolicy, the queue checks at start (not the call observer's metric hooks)
    "sqs_transport": [
        f"workers.sqs_transport.*{name}*"
        for name in (
            "_is_fifo",
            "_get_async",
            "_receive_message",
            "_on_messages_ready",
            "_checked",
            "_unreadable",
            "_delete_rejected_message",
            "_release",
            "_lookup_urls",
            "_check_visibility",
        )
    ],
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in MODULES:
        sys.exit(f"usage: python -m tests.mutation {{{','.join(MODULES)}}} <mutmut command> [args]")
    files, tests = MODULES[argv[0]]
    import mutmut.configuration as configuration

    base = configuration._load_config()
    configuration._config = dataclasses.replace(base, only_mutate=files, pytest_add_cli_args_test_selection=tests)
    # the same import as the `mutmut` script: mutmut.__main__ must be the cached module, not a re-run (GH-466)
    from mutmut.__main__ import cli

    command = argv[1:]
    if command[:1] == ["run"] and not [a for a in command[1:] if not a.startswith("-") and not a.isdigit()]:
        command += DEFAULT_MUTANTS.get(argv[0], [])  # no mutant named: this module's default set
    cli(command)


if __name__ == "__main__":
    main(sys.argv[1:])
