"""The quarantine list (`workers.quarantine`) and `coachup dlq quarantine ls/purge`, on a private Redis.

Given unreadable broker bytes, when they are quarantined, then the bytes are kept exactly, the counter counts
them by queue and reason, the CLI lists them without their bytes unless asked, and purge empties the list.
"""

from __future__ import annotations

import base64
import json

import pytest
import redis
from click.testing import CliRunner

from coachup.cli import main
from coachup.metrics import Metrics
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from workers.quarantine import QUARANTINE_KEY, quarantine, quarantined


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    yield server
    server.close()


def test_quarantined_bytes_are_kept_counted_listed_and_purged(private_redis, tmp_path):
    client = redis.Redis.from_url(private_redis.url)
    metrics = Metrics()
    raw = b"\xff\xfe not json, private words"
    quarantine(client, "assessments", "envelope_not_json", raw, metrics=metrics)
    quarantine(client, "stt", "body_encoding", b"{}", metrics=metrics)

    kept = quarantined(client)
    assert [e.queue for e in kept] == ["stt", "assessments"] and kept[1].raw == raw
    count = metrics.registry.get_sample_value(
        "coachup_messages_quarantined_total", {"queue": "assessments", "reason": "envelope_not_json"}
    )
    assert count == 1.0

    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_BROKER_URL": private_redis.url,
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
    }
    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "quarantine", "ls"], env=env)
    docs = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert [d["reason"] for d in docs] == ["body_encoding", "envelope_not_json"] and "raw" not in docs[0]
    assert "private words" not in listed.output
    with_raw = runner.invoke(main, ["dlq", "quarantine", "ls", "--raw"], env=env).output
    assert base64.b64encode(raw).decode() in with_raw
    assert runner.invoke(main, ["dlq", "quarantine", "purge"], env=env).exit_code == 1
    assert "purged 2" in runner.invoke(main, ["dlq", "quarantine", "purge", "--yes"], env=env).output
    assert client.llen(QUARANTINE_KEY) == 0
    client.close()
