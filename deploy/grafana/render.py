"""Render the Grafana dashboards (`dashboards/*.json`) from the panel lists below.

Run `python deploy/grafana/render.py` after editing; `tests/deploy/` fails when the committed JSON differs.
The datasource is a dashboard variable (`$ds`, any Prometheus); `$logs` picks the logs datasource that panel
links open. Metric labels never carry a request id, so a panel links to the logs of its route/queue and time
range, where each `http_request` / task event carries `requestId` for the drill-down. Units: seconds (`s`),
ratios 0..1 (`percentunit`), US dollars (`currencyUSD`), requests or tasks per second (`reqps`, `ops`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

__all__ = ["HERE", "dashboards", "render", "main"]

HERE = Path(__file__).resolve().parent
RI = "$__rate_interval"
_LOGS_LINK = (
    '/explore?left={"datasource":"${logs}","queries":[{"refId":"A","expr":"{app=\\"coachup\\"} | json'
    ' | %s"}],"range":{"from":"${__from}","to":"${__to}"}}'
)


def _p95(metric: str, by: str = "", sel: str = "") -> str:
    sel = "{" + sel + "}" if sel else ""
    by = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({by}) (rate({metric}_bucket{sel}[{RI}])))"


def _panel(
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    *,
    kind: str = "timeseries",
    logs: str | None = None,
    desc: str = "",
) -> dict:
    """One panel; `targets` are (PromQL, legend); `logs` is the LogQL filter of its logs link."""
    panel = {
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": {"type": "prometheus", "uid": "${ds}"},
        "fieldConfig": {"defaults": {"unit": unit, "links": []}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "expr": e, "legendFormat": leg, "datasource": {"type": "prometheus", "uid": "${ds}"}}
            for i, (e, leg) in enumerate(targets)
        ],
    }
    if logs:
        panel["fieldConfig"]["defaults"]["links"].append(
            {"title": "Logs (requestId drill-down)", "url": _LOGS_LINK % logs, "targetBlank": True}
        )
    return panel


def _speech() -> list[dict]:
    lat = "coachup_http_request_latency_seconds"
    req, err = "coachup_http_requests_total", "coachup_http_request_errors_total"
    route_logs = 'event=\\"http_request\\" | route=\\"${__field.labels.route}\\"'
    turn = " + ".join(
        _p95(lat, "", f'route="{r}"') for r in ("POST /api/v1/stt", "POST /messages/ingest", "POST /api/v1/tts")
    )
    return [
        _panel(
            "Request rate per route", [(f"sum by (route) (rate({req}[{RI}]))", "{{route}}")], "reqps", logs=route_logs
        ),
        _panel(
            "Error rate per route (4xx+5xx share)",
            [
                (
                    f"sum by (route) (rate({err}[{RI}])) / clamp_min(sum by (route) (rate({req}[{RI}])), 1e-9)",
                    "{{route}}",
                )
            ],
            "percentunit",
            logs=route_logs,
        ),
        _panel("p95 latency per route", [(_p95(lat, "route"), "{{route}}")], "s", logs=route_logs),
        _panel(
            "5xx share per route (alerts)",
            [
                (
                    f'sum by (route) (rate({req}{{status=~"5.."}}[{RI}])) / clamp_min(sum by (route) '
                    f"(rate({req}[{RI}])), 1e-9)",
                    "{{route}}",
                )
            ],
            "percentunit",
            logs=route_logs,
        ),
        _panel("Full turn p95 (STT + ingest + TTS)", [(turn, "turn p95")], "s", kind="stat"),
        _panel(
            "Speech provider p95 latency",
            [(_p95("coachup_provider_latency_seconds", "kind, provider", 'kind=~"stt|tts"'), "{{kind}} {{provider}}")],
            "s",
            logs='span=~\\"provider.(stt|tts)\\" | provider=\\"${__field.labels.provider}\\"',
        ),
        _panel(
            "Speech provider errors",
            [
                (
                    f'sum by (kind, provider, reason) (rate(coachup_provider_errors_total{{kind=~"stt|tts"}}[{RI}]))',
                    "{{kind}} {{provider}} {{reason}}",
                )
            ],
            "ops",
            logs='span=~\\"provider.(stt|tts)\\" | status=\\"error\\"',
        ),
        _panel(
            "Chat time to first token and stream duration p95",
            [
                (_p95("coachup_chat_first_token_seconds", "provider, model"), "first token {{provider}} {{model}}"),
                (_p95("coachup_chat_stream_duration_seconds", "provider, model"), "stream {{provider}} {{model}}"),
            ],
            "s",
            logs='event=\\"chat_stream\\"',
            desc="The alert fires when first-token p95 stays above thresholds.yml chat_first_token_p95_s for 10m.",
        ),
        _panel(
            "Chat streams: open, disconnects, timeouts, errors",
            [
                ("sum(coachup_chat_streams_open)", "open"),
                (f"sum(rate(coachup_chat_stream_disconnects_total[{RI}])) * 60", "disconnects/min"),
                (f"sum(rate(coachup_chat_stream_timeouts_total[{RI}])) * 60", "first-token timeouts/min"),
                (f"sum(rate(coachup_chat_stream_errors_total[{RI}])) * 60", "provider errors/min"),
            ],
            "short",
            logs='event=\\"chat_stream\\" | outcome!=\\"completed\\"',
        ),
        _panel(
            "Audio bytes",
            [
                (f"sum by (provider) (rate(coachup_audio_bytes_in_total[{RI}]))", "in {{provider}}"),
                (f"sum by (provider) (rate(coachup_audio_bytes_out_total[{RI}]))", "out {{provider}}"),
            ],
            "Bps",
        ),
    ]


def _workers() -> list[dict]:
    task_logs = 'queue=\\"${__field.labels.queue}\\"'
    sqs = [
        (f"histogram_quantile(0.95, sum by (le) (rate(coachup_sqs_{op}_seconds_bucket[{RI}])))", op)
        for op in ("send", "receive", "delete", "change_visibility")
    ]
    return [
        _panel(
            "Queue depth per queue", [("max by (queue) (coachup_queue_depth)", "{{queue}}")], "short", logs=task_logs
        ),
        _panel("In flight per queue", [("max by (queue) (coachup_queue_in_flight)", "{{queue}}")], "short"),
        _panel(
            "Outbox: commit→publish p50 / p99",
            [
                (
                    f"histogram_quantile(0.5, sum by (le) (rate(coachup_outbox_publish_lag_seconds_bucket[{RI}])))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) (rate(coachup_outbox_publish_lag_seconds_bucket[{RI}])))",
                    "p99",
                ),
            ],
            "s",
            logs='event=\\"outbox_publish_deferred\\"',
            desc="Job row committed to message accepted by the broker (the outbox relay); runbooks/outbox.md",
        ),
        _panel(
            "Outbox: jobs waiting to be published",
            [
                ("max(coachup_outbox_pending_jobs)", "pending"),
                ("max(coachup_outbox_oldest_pending_age_seconds)", "oldest age (s)"),
            ],
            "short",
        ),
        _panel(
            "Enqueue→dequeue p95",
            [
                (_p95("coachup_assessments_enqueue_latency_seconds"), "assessments"),
                (_p95("coachup_task_queue_wait_seconds", "queue"), "{{queue}} (all tasks)"),
            ],
            "s",
            logs=task_logs,
        ),
        _panel(
            "Assessment job p95 per rubric",
            [(_p95("coachup_assessment_job_seconds", "rubric_version"), "{{rubric_version}}")],
            "s",
            logs='event=\\"assessments_job_complete\\"',
        ),
        _panel(
            "Assessment failure rate",
            [
                (
                    f'sum(rate(coachup_assessments_jobs_total{{status="failure"}}[{RI}])) / '
                    f"clamp_min(sum(rate(coachup_assessments_jobs_total[{RI}])), 1e-9)",
                    "failure share",
                )
            ],
            "percentunit",
            logs='event=\\"assessments_job_failed\\"',
        ),
        _panel(
            "Task failures per task",
            [(f'sum by (task) (rate(coachup_tasks_total{{status="failed"}}[{RI}]))', "{{task}}")],
            "ops",
        ),
        _panel(
            "Retries",
            [
                (f"sum(rate(coachup_assessments_retries_total[{RI}])) * 60", "assessment retries/min"),
                (f'sum by (task) (rate(coachup_tasks_total{{status="retried"}}[{RI}])) * 60', "{{task}} retries/min"),
            ],
            "short",
            logs='event=\\"assessments_retry\\"',
        ),
        _panel(
            "Dead-letter depth", [('max(coachup_queue_depth{queue="deadletter"})', "deadletter")], "short", kind="stat"
        ),
        _panel(
            "Dead-lettered per reason",
            [("sum by (task, reason) (increase(coachup_deadletters_total[1h]))", "{{task}} {{reason}}")],
            "short",
        ),
        _panel("SQS call p95 latency", sqs, "s"),
        _panel(
            "SQS call errors",
            [
                (f'sum(rate(coachup_sqs_messages_enqueued_total{{status="error"}}[{RI}]))', "send"),
                (f'sum(rate(coachup_sqs_messages_deleted_total{{status="error"}}[{RI}]))', "delete"),
                (f'sum(rate(coachup_sqs_visibility_changes_total{{status="error"}}[{RI}]))', "visibility"),
                (f'sum(rate(coachup_sqs_messages_polled_total{{outcome="error"}}[{RI}]))', "receive"),
            ],
            "ops",
        ),
        _panel("Tasks in progress", [("sum by (queue) (coachup_tasks_in_progress)", "{{queue}}")], "short"),
        _panel("Worker hosts up", [('up{job="coachup-workers"}', "{{instance}}")], "short"),
    ]


def _cost() -> list[dict]:
    day = "sum by (provider, model) (increase(coachup_provider_cost_cents_total[1d])) / 100"
    return [
        _panel(
            "Prompt tokens per hour",
            [
                (
                    f"sum by (provider, model) (rate(coachup_provider_tokens_in_total[{RI}])) * 3600",
                    "{{provider}} {{model}}",
                )
            ],
            "short",
        ),
        _panel(
            "Completion tokens per hour",
            [
                (
                    f"sum by (provider, model) (rate(coachup_provider_tokens_out_total[{RI}])) * 3600",
                    "{{provider}} {{model}}",
                )
            ],
            "short",
        ),
        _panel(
            "Cost per day per provider/model (trailing 24h)",
            [(day, "{{provider}} {{model}}")],
            "currencyUSD",
            logs='span=\\"provider.chat\\"',
        ),
        _panel(
            "Cost per active user per day (planned DAU)",
            [
                ("sum(increase(coachup_provider_cost_cents_total[1d])) / 100 / $planned_dau", "trailing 24h"),
                (
                    "avg_over_time(sum(increase(coachup_provider_cost_cents_total[1d]))[3d:1h]) / 100 / $planned_dau",
                    "3-day moving average (alert)",
                ),
            ],
            "currencyUSD",
            desc="No DAU metric is exported; `planned_dau` mirrors thresholds.yml (docs/deploy.md).",
        ),
    ]


def _dashboard(uid: str, title: str, panels: list[dict], extra_vars: list[dict] = ()) -> dict:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    ds_var = {
        "name": "ds",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }
    logs_var = {"name": "logs", "label": "Logs", "type": "datasource", "query": "loki", "current": {}, "hide": 0}
    return {
        "uid": uid,
        "title": title,
        "tags": ["coachup"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [ds_var, logs_var, *extra_vars]},
        "annotations": {"list": []},
        "links": [
            {
                "title": "Runbooks",
                "url": "https://github.com/coachup/coachup/blob/main/docs/deploy.md",
                "type": "link",
                "targetBlank": True,
            }
        ],
        "panels": panels,
    }


def dashboards() -> dict[str, dict]:
    """File name -> dashboard model."""
    planned = yaml.safe_load((HERE.parent / "prometheus" / "thresholds.yml").read_text())["planned_dau"]
    dau = {
        "name": "planned_dau",
        "label": "Planned DAU (thresholds.yml)",
        "type": "constant",
        "query": str(planned),
        "hide": 2,
    }
    return {
        "coachup-ui-speech.json": _dashboard("coachup-ui-speech", "Coach Up · API and speech", _speech()),
        "coachup-workers.json": _dashboard("coachup-workers", "Coach Up · workers and queues", _workers()),
        "coachup-cost.json": _dashboard("coachup-cost", "Coach Up · tokens and cost", _cost(), [dau]),
    }


def render() -> dict[str, str]:
    """File name -> JSON text."""
    return {name: json.dumps(d, indent=2, ensure_ascii=False) + "\n" for name, d in dashboards().items()}


def main() -> int:
    """Write every dashboard under `dashboards/`."""
    for name, text in render().items():
        (HERE / "dashboards" / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
