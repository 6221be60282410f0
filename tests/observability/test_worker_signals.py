"""A real worker on Redis, read back through its JSON log lines and its metrics endpoint.

Given the scenario of the conftest (2 successes, 1 permanent failure, 1 job that fails once then succeeds,
2 dead letters waiting), the events carry the reference fields, the counters add up across prefork
children, the request id travels API -> task -> upstream, and promtool accepts the exposition.
"""

from __future__ import annotations

import shutil
import subprocess

from tests.observability.conftest import DEADLETTERS_PUBLISHED, TRACEPARENT
from tests.observability.promtext import value
from tests.support.services import require
from tests.support.wait import wait_until

ASSESS = "assessments.run"


def _settled(scenario) -> str:
    """The scrape once the last job's postrun has been counted (children write right after the task)."""

    def done():
        text = scenario.scrape()
        return text if value(text, "coachup_assessments_jobs_total", status="success") >= 3 else None

    return wait_until(done, timeout=20, interval=0.1, what="all job outcomes counted")


def test_counters_after_successes_failures_and_retries(scenario):
    # Given 3 jobs that end well (one after a retry) and 1 that fails permanently
    text = _settled(scenario)
    # Then the reference counters say exactly that
    assert value(text, "coachup_assessments_jobs_total", status="success") == 3
    assert value(text, "coachup_assessments_jobs_total", status="failure") == 1
    assert value(text, "coachup_assessments_retries_total") == 1
    # And the generic per-task counters agree (the retry is a second delivery of the same task)
    for status, n in {"received": 5, "started": 5, "succeeded": 3, "failed": 1, "retried": 1}.items():
        assert value(text, "coachup_tasks_total", task=ASSESS, queue="assessments", status=status) == n, status
    assert value(text, "coachup_tasks_in_progress", task=ASSESS) == 0
    assert value(text, "coachup_task_queue_wait_seconds_count", task=ASSESS) == 4  # first attempts only
    assert value(text, "coachup_assessment_job_seconds_count") == 3
    assert value(text, "coachup_assessments_enqueue_latency_seconds_count") == 4
    # And per skill (3 default skills per attempt: 2x3 ok + 3 rejected + 3 flaky + 3 ok after retry)
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(text, "coachup_assessment_skill_seconds_count", rubric_version="v2", **labels) == 15
    assert value(text, "coachup_assessment_skill_errors_total", reason="upstream_rejected", **labels) == 3
    assert value(text, "coachup_assessment_skill_errors_total", reason="upstream_unavailable", **labels) == 3
    assert value(text, "coachup_provider_requests_total", kind="chat", status="ok", **labels) == 9
    assert value(text, "coachup_provider_errors_total", kind="chat", **labels) == 6
    assert value(text, "coachup_provider_tokens_in_total", **labels) == 9 * 1000
    assert value(text, "coachup_provider_tokens_out_total", **labels) == 9 * 200
    assert value(text, "coachup_provider_cost_cents_total", **labels) > 0


def test_queue_depth_comes_from_the_broker_for_every_queue(scenario):
    # Given dead letters that no worker consumes (the probes, plus one letter per job that failed for good)
    # and every other queue drained
    died = sum(1 for job in scenario.jobs if job.kind == "rejected")
    expected = {"assessments": 0, "stt": 0, "tts": 0, "deadletter": DEADLETTERS_PUBLISHED + died}

    def sampled():
        text = scenario.scrape()
        got = {q: value(text, "coachup_queue_depth", queue=q) for q in expected}
        return text if got == expected else None

    # Then the main process's sampler reports each queue's depth as the broker has it
    text = wait_until(sampled, timeout=10, interval=0.1, what="queue depths sampled")
    assert value(text, "coachup_assessments_queue_depth") == 0
    # And the dequeue events carry the sampled depth of their queue
    assert all(isinstance(e["queueDepth"], int) for e in scenario.worker.events("assessments_dequeue"))


def test_worker_events_carry_the_reference_fields(scenario):
    _settled(scenario)
    w = scenario.worker
    ok = next(j for j in scenario.jobs if j.kind == "ok")
    flaky = next(j for j in scenario.jobs if j.kind == "flaky")
    rejected = next(j for j in scenario.jobs if j.kind == "rejected")

    def of(event, job):
        return [e for e in w.events(event) if e.get("requestId") == job.request_id]

    (dequeue,) = of("assessments_dequeue", ok)
    assert dequeue["provider"] == "redis" and dequeue["workerIndex"] in (0, 1, 2)
    assert isinstance(dequeue["enqueueLatencyMs"], int) and isinstance(dequeue["queueDepth"], int)
    assert dequeue["sessionIdHash"].startswith("s:") and dequeue["groupId"].startswith("g:")
    assert dequeue["userIdHash"].startswith("u:") and dequeue["traceparent"] == TRACEPARENT
    assert dequeue["modelId"] == "gpt-4o-mini"
    (start,) = of("assessments_job_start", ok)
    assert start["rubricVersion"] == "v2"
    skills = of("assessment_skill_complete", ok)
    assert len(skills) == 3 and all(len(s["skillHash"]) == 64 and s["latency_ms"] >= 0 for s in skills)
    (scores,) = of("assessments_scores", ok)
    assert set(scores["scores"]) == {"correctness", "clarity", "conciseness", "fluency"}
    assert scores["span"] == {"start_index": 0, "end_index": 1}
    (complete,) = of("assessments_job_complete", ok)
    assert complete["total_ms"] >= 0 and complete["rubricVersion"] == "v2"
    spans = of("provider.chat", ok)
    assert len(spans) == 3
    for span in spans:
        assert span["span"] == "provider.chat" and span["provider"] == "openai" and span["modelId"] == "gpt-4o-mini"
        assert (span["tokensIn"], span["tokensOut"], span["status"]) == (1000, 200, "ok")
        assert span["costCents"] > 0 and span["latencyMs"] >= 0
    # the retry: skill errors and provider spans with error and retry info, then one retry event
    errors = of("assessment_skill_error", flaky)
    assert len(errors) == 3 and {e["error"] for e in errors} == {"upstream_unavailable"}
    failed_spans = [s for s in of("provider.chat", flaky) if s["status"] == "error"]
    assert len(failed_spans) == 3
    assert failed_spans[0]["error"]["type"] == "upstream_unavailable"
    assert failed_spans[0]["retry"] == {"attempt": 1, "max": 3, "backoffMs": 50}
    (retry,) = of("assessments_retry", flaky)
    assert retry["attempt"] == 1 and 50 <= retry["backoff_ms"] <= 63 and retry["level"] == "warn"
    assert [d["attempt"] for d in of("assessments_dequeue", flaky)] == [1, 2]
    assert len(of("assessments_job_complete", flaky)) == 1
    # the permanent failure: no retry, one failure event
    assert not of("assessments_retry", rejected)
    (failed,) = of("assessments_job_failed", rejected)
    assert failed["error"]["type"] == "upstream_rejected" and failed["level"] == "error"
    # every line is one JSON event with the common fields
    for record in w.events():
        if record.get("event") != "log":
            assert {"ts", "level", "service", "env", "event"} <= set(record)
            assert record["service"] == "worker" and record["ts"].endswith("Z")


def test_request_id_on_api_line_every_task_line_and_upstream_call(scenario):
    _settled(scenario)
    for job in scenario.jobs:
        # the API request line
        lines = [e for e in scenario.api_events("http_request") if e.get("requestId") == job.request_id]
        assert lines and all(e["route"] == "POST /messages/ingest" for e in lines)
        enqueue = [e for e in scenario.api_events("assessments_enqueue") if e.get("requestId") == job.request_id]
        assert len(enqueue) == 1 and enqueue[0]["service"] == "api"
        # every worker line of this task (found by the session hash the dequeue line carries)
        dequeue = [e for e in scenario.worker.events("assessments_dequeue") if e.get("requestId") == job.request_id]
        session_hash = dequeue[0]["sessionIdHash"]
        task_lines = [e for e in scenario.worker.events() if e.get("sessionIdHash") == session_hash]
        assert len(task_lines) >= 5
        assert {e.get("requestId") for e in task_lines} == {job.request_id}
    # and every upstream call carries the request id, traceparent, provider and model headers
    by_id = {}
    for request in scenario.fake.requests:
        by_id.setdefault(request["headers"].get("x-request-id"), []).append(request["headers"])
    assert set(by_id) == {job.request_id for job in scenario.jobs}
    for headers in (h for hs in by_id.values() for h in hs):
        assert headers["traceparent"] == TRACEPARENT
        assert headers["x-provider"] == "openai" and headers["x-model-id"] == "gpt-4o-mini"
        assert "x-secret-thing" not in headers


def test_api_request_metrics_and_route_labels(scenario):
    text = scenario.api_metrics
    assert value(text, "coachup_http_requests_total", route="POST /messages/ingest", status="200") == 8
    assert value(text, "coachup_http_request_latency_seconds_count", route="POST /messages/ingest") == 8
    assert value(text, "coachup_http_request_errors_total") == 0
    # one request line per request, with the canonical route (never the raw path)
    gets = [e for e in scenario.api_events("http_request") if e["route"].startswith("GET /assessments")]
    assert gets and {e["route"] for e in gets} == {"GET /assessments/{session_id}"}
    assert not any("sess-" in e["route"] for e in scenario.api_events("http_request"))
    assert all(e["params"] == {"groupIdPresent": True} for e in gets)


def test_promtool_accepts_both_expositions(scenario):
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package prometheus)")
    for text in (_settled(scenario), scenario.api_metrics):
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_stale_files_were_wiped_at_worker_start(scenario):
    # Given a counter file left by an earlier run (written before the worker started)
    from coachup.metrics import multiproc

    folder = (
        scenario.worker.log_path.parent / "prometheus" / f"worker-{scenario.metrics_url.split(':')[2].split('/')[0]}"
    )
    # Then it is gone, and only live processes' files remain
    assert "counter_999999.db" not in multiproc.files(folder)
    assert value(_settled(scenario), "coachup_tasks_total", status="received") == 5
