"""No raw value leaks: a full scenario (ingest, assess, a permanent failure, a retry) with recognisable raw
values, then every captured log line (API and worker), every metric sample (worker endpoint and API
`/metrics`) and every task message published to the broker (headers, properties, decoded body) is scanned.

The STT/TTS scenario adds its own sources to the same `LeakScanner` (tests/support/leaks.py).
"""

from __future__ import annotations

from tests.conftest import TEST_HASH_SECRET
from tests.observability.conftest import OPENAI_KEY, RAW_TEXT, RAW_USER
from tests.support.leaks import LeakScanner


def test_no_raw_value_in_any_log_line_metric_or_task_message(scenario):
    # Given the raw values the scenario sent: session ids, group ids, user id, transcript words, secrets
    needles = [
        RAW_USER,
        RAW_TEXT,
        "REJECTME",
        "FLAKYONCE",
        "Revenue grew",
        OPENAI_KEY,
        TEST_HASH_SECRET,
        "RAWUNKNOWNHEADER",
        "sess-RAWSESS",
    ]
    needles += [job.group_id for job in scenario.jobs]
    scanner = LeakScanner(needles)
    worker_lines = [line for line in scenario.worker.log_text().splitlines() if line.startswith("{")]
    # When every source is scanned
    hits = scanner.scan("worker log", worker_lines)
    hits += scanner.scan("api log", scenario.api_lines)
    hits += scanner.scan("worker metrics", scenario.scrape().splitlines())
    hits += scanner.scan("api metrics", scenario.api_metrics.splitlines())
    hits += scanner.scan("task messages", scenario.broker_messages)
    # Then nothing leaked, and each source really was there to scan
    assert hits == []
    assert scanner.scanned["worker log"] > 50 and scanner.scanned["api log"] >= 8
    assert scanner.scanned["worker metrics"] > 100 and scanner.scanned["api metrics"] > 10
    # the API's 4 publishes, the retry the worker published, the 2 dead letters (each: command + envelope + body)
    assert len(scenario.broker_messages) >= 7 * 3, scenario.broker_messages[:2]
    assert any('"requestId"' in t for t in scenario.broker_messages)  # headers were decoded
    assert any(t.startswith('[["') for t in scenario.broker_messages)  # and so were the bodies (args)


def test_scanner_finds_a_planted_value():
    # Given a line that does carry a raw value
    scanner = LeakScanner(["sess-RAWSESS"])
    # Then the scanner reports it (case-insensitively), so a zero above means something
    assert scanner.scan("x", ['{"sessionId": "SESS-rawsess-1"}']) != []
