"""Prometheus: rendered alerts are up to date, parse, have unit tests that fire and stay quiet, and read only
metric names the code exports; the scrape config passes `promtool check config`."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml

from tests.deploy.conftest import DEPLOY, ROOT
from tests.support.promql import BUILTIN_SERIES, exported_names, metric_names, run_promtool
from tests.support.services import require

PROM = DEPLOY / "prometheus"
TEST_FILES = ("alerts.test.yml", "alerts.daily.test.yml")
REFERENCE_ALERTS = {  # reference sections 7 and 14, plus the SLO alerts of issue 7
    "CoachUpAssessmentsFailureRateHigh",
    "CoachUpAssessmentsRetriesSpike",
    "CoachUpSQSSendErrors",
    "CoachUpSQSDeleteErrors",
    "CoachUpSQSVisibilityErrors",
    "CoachUpAssessmentsEnqueueP95High",
    "CoachUpAssessmentsJobP95High",
    "CoachUpSTTErrorRateHigh",
    "CoachUpTTSErrorRateHigh",
    "CoachUpSpeechProviderErrors",
    "CoachUpSpeechLatencyP95High",
    "CoachUpFullTurnP95High",
    "CoachUpApiErrorRateHigh",
    "CoachUpAssessmentsBacklogGrowing",
    "CoachUpDeadLetterQueueNotEmpty",
    "CoachUpWorkerDown",
    "CoachUpCostPerDauOverBudget",
    "CoachUpChatFirstTokenP95High",  # reference section 4: first-token p95 tied to an alert
}
OWN_ALERTS = {
    "CoachUpJobsRequeued",  # not in the reference: the broker lost a message and the sweep requeued it
    # liveness (issue 17): a worker whose broker is gone, a stale depth sample, a scheduler that stopped
    "CoachUpWorkerBrokerDisconnected",
    "CoachUpQueueDepthSampleStale",
    "CoachUpSchedulerStalled",
    "CoachUpMessagesQuarantined",  # not in the reference: a message no worker could decode (issue 16)
    "CoachUpApiRequestTimeouts",  # not in the reference: requests answered 504 past the worker timeout (issue 16)
    # the outbox relay (issue 16): accepted jobs that reach the broker late, or not at all
    "CoachUpOutboxLagging",
    "CoachUpOutboxBacklog",
}
ALERTS = REFERENCE_ALERTS | OWN_ALERTS


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def test_rendered_files_are_up_to_date(render_module):
    for name, text in zip(render_module.OUTPUTS, render_module.render(), strict=True):
        assert (PROM / name).read_text() == text, f"{name} is stale: run python deploy/prometheus/render.py"


def test_every_alert_of_the_reference_and_the_slos_is_there():
    assert {r["alert"] for r in _rules()} == ALERTS


def test_thresholds_live_only_in_thresholds_yml(render_module):
    """Changing a threshold in thresholds.yml changes the rendered rule: no number is hard-coded twice."""
    t = render_module.load_thresholds()
    bumped = dict(t, assessments_job_p95_s=123, api_error_ratio=0.321)
    text = render_module.render(bumped)[0]
    assert "> 123" in text and "> 0.321" in text


def test_rules_parse():
    r = run_promtool("check", "rules", PROM / "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in r.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases = [c for f in TEST_FILES for c in yaml.safe_load((PROM / f).read_text())["tests"]]
    by_alert: dict[str, set[str]] = {}
    for case in cases:
        for t in case["alert_rule_test"]:
            by_alert.setdefault(t["alertname"], set()).add("fires" if t["exp_alerts"] else "quiet")
    assert by_alert == {name: {"fires", "quiet"} for name in ALERTS}


def test_promtool_unit_tests_pass():
    r = run_promtool("test", "rules", *TEST_FILES, cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unit_tests_really_discriminate(tmp_path):
    """Against rules that never fire exactly the firing cases fail; against rules that always fire every quiet
    case fails: no case passes by accident (wrong labels, empty series, a threshold nobody reaches)."""
    for f in TEST_FILES:
        shutil.copy(PROM / f, tmp_path)
    for expr, case in (("vector(0) > 1", "bad"), ("vector(1)", "good")):
        rules = _rules()
        for rule in rules:
            rule["expr"], rule["for"] = expr, "0m"
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": rules}]}))
        r = run_promtool("test", "rules", *TEST_FILES, cwd=tmp_path)
        failed = set(re.findall(r"name: (\S+) (bad|good)", r.stdout + r.stderr))
        expected = {(name, case) for name in ALERTS}
        if case == "bad":
            assert failed == expected, r.stdout[-3000:]
        else:  # an always-firing rule also misses the series labels some firing cases expect
            assert expected <= failed, r.stdout[-3000:]


def test_rules_read_only_exported_metrics():
    exported = exported_names() | BUILTIN_SERIES
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


def _anchors(doc: str) -> set[str]:
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, flags=re.M)}


def test_alerts_route_to_a_team_and_link_a_runbook_section():
    """Each alert links a section named after it: in docs/deploy.md, or in its own page under docs/runbooks/."""
    for rule in _rules():
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["labels"]["team"] in {"backend", "speech", "platform", "product"}
        url = rule["annotations"]["runbook_url"]
        match = re.search(r"/blob/main/(docs/(?:deploy\.md|runbooks/[a-z-]+\.md))#(.+)$", url)
        assert match and match.group(2) == rule["alert"].lower(), url
        doc = (ROOT / match.group(1)).read_text()
        assert rule["alert"].lower() in _anchors(doc), f"{match.group(1)} has no section for {rule['alert']}"


def test_scrape_config_passes_promtool():
    r = run_promtool("check", "config", PROM / "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = {j["job_name"] for j in yaml.safe_load((PROM / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs == {"coachup-api", "coachup-workers", "coachup-flower"}


def _amtool(*args: str) -> subprocess.CompletedProcess:
    path = shutil.which("amtool")
    # a laptop without it skips, with the install command; CI fails (.ci/run installs it)
    require(path is not None, "amtool is missing: apt-get install prometheus-alertmanager (.ci/run does it)")
    assert path is not None
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60)


def test_alertmanager_config_is_valid_and_pages_the_alerts_team():
    config = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    r = _amtool("check-config", config)
    assert r.returncode == 0, r.stdout + r.stderr
    for rule in _rules():
        labels = rule["labels"]
        r = _amtool(
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"alertname={rule['alert']}",
            *(f"{k}={v}" for k, v in labels.items()),
        )
        expected = f"{labels['team']}-{'pager' if labels['severity'] == 'page' else 'chat'}"
        assert r.stdout.strip() == expected, (rule["alert"], r.stdout, r.stderr)
