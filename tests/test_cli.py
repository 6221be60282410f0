"""The documented `coachup` commands and production defaults that the other suites do not reach.

`coachup flower` refuses to start without credentials; `coachup db init` creates a usable store and can run
again; a production configuration keeps the documented delivery defaults (backoff base, visibility
timeout, prefetch).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET

ROOT = Path(__file__).resolve().parents[1]


def _coachup(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_", "AUTH_"))}
    return subprocess.run(
        [sys.executable, "-m", "coachup.cli", *argv],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_flower_without_credentials_refuses_to_start(tmp_path):
    # Given no FLOWER_BASIC_AUTH (and no --no-auth), on a broker Flower can watch
    env = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
    proc = _coachup("flower", "--port", "0", env=env)
    # Then it exits non-zero with the line that says what to set, before Flower ever starts
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "FLOWER_BASIC_AUTH is not set" in proc.stderr and "--no-auth" in proc.stderr
    assert "flower" not in proc.stdout.lower()


def test_db_init_creates_a_usable_store_and_can_run_again(store_url, tmp_path):
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_DATABASE_URL": store_url,
    }
    first, second = _coachup("db", "init", env=env), _coachup("db", "init", env=env)
    assert (first.returncode, second.returncode) == (0, 0), (first.stderr[-800:], second.stderr[-800:])
    kind = "sqlite" if store_url.startswith("sqlite") else "postgresql+psycopg"
    assert first.stdout.strip() == second.stdout.strip() == f"store ready: {kind} schema up to date"
    # Then the command itself made the tables and seeded the catalogue, and the store works
    from sqlalchemy import create_engine, func, inspect, select, table

    from coachup.assessment.skills import SKILLS
    from coachup.store import create_store

    engine = create_engine(store_url)
    try:
        assert {"jobs", "dead_letters", "skills"} <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(table("skills"))) == len(SKILLS)
    finally:
        engine.dispose()
    store = create_store(store_url)
    try:
        job_id = store.create_job("assessment", session_id="s-init", group_id="g1")
        assert store.get_job(job_id)["status"] == "queued"
    finally:
        store.engine.dispose()


def test_production_keeps_the_documented_delivery_defaults(tmp_path):
    from coachup.retry import backoff_ms
    from workers import create_celery

    # Given a production configuration that sets only what production requires
    settings = load_settings(
        {
            "COACHUP_ENV": "production",
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_BROKER_URL": "redis://127.0.0.1:1/0",  # never connected: the app is only configured
            "AUTH_JWKS_URL": "https://idp.example/jwks.json",
            "AUTH_ISSUER": "https://idp.example/",
            "AUTH_AUDIENCE": "coachup",
        }
    )
    conf = create_celery(settings).conf
    # Then retries back off from 200 ms (+ up to 25% jitter), doubling each time
    assert settings.backoff_base_ms == 200
    delays = [
        [backoff_ms(k, settings.backoff_base_ms, settings.backoff_max_ms, rng=random.Random(seed)) for k in range(3)]
        for seed in range(20)
    ]
    assert all(200 * 2**k <= d[k] <= 250 * 2**k for d in delays for k in range(3)), delays
    # a message in hand stays invisible for an hour, and each worker process holds one message at a time
    assert settings.visibility_timeout_s == 3600
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    assert conf.worker_prefetch_multiplier == 1 and conf.task_acks_late is True
