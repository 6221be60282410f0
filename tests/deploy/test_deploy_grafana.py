"""Grafana dashboards, validated offline (no Grafana binary on this machine): rendered JSON is current and
parses, UIDs and panel ids are unique, every PromQL expression parses with promtool and reads only metric names
the code exports, and the provisioning files point at the dashboards."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.support.promql import BUILTIN_SERIES, exported_names, metric_names, run_promtool

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# sample values for dashboard variables so promtool can parse the expressions
_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d", "$planned_dau": "1000"}


@pytest.fixture(scope="module")
def grafana_render():
    spec = importlib.util.spec_from_file_location("coachup_grafana_render", GRAFANA / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def _exprs() -> list[tuple[str, str, str]]:
    return [(name, p["title"], t["expr"]) for name, d in _load().items() for p in d["panels"] for t in p["targets"]]


def test_rendered_dashboards_are_up_to_date(grafana_render):
    rendered = grafana_render.render()
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text() == rendered[path.name], f"{path.name} is stale: run python deploy/grafana/render.py"


def test_the_three_dashboards_with_unique_uids_and_panel_ids():
    dashboards = _load()
    uids = [d["uid"] for d in dashboards.values()]
    assert sorted(uids) == ["coachup-cost", "coachup-ui-speech", "coachup-workers"]
    for name, d in dashboards.items():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        assert all(p["targets"] for p in d["panels"]), name
        refs = [[t["refId"] for t in p["targets"]] for p in d["panels"]]
        assert all(len(r) == len(set(r)) for r in refs), name


def test_datasource_is_a_variable_everywhere():
    for name, d in _load().items():
        names = {v["name"]: v for v in d["templating"]["list"]}
        assert names["ds"]["type"] == "datasource" and names["ds"]["query"] == "prometheus", name
        for p in d["panels"]:
            assert p["datasource"]["uid"] == "${ds}", (name, p["title"])
            assert all(t["datasource"]["uid"] == "${ds}" for t in p["targets"]), (name, p["title"])


def test_route_panels_link_to_the_logs():
    speech = _load()["coachup-ui-speech.json"]
    linked = [p["title"] for p in speech["panels"] if p["fieldConfig"]["defaults"]["links"]]
    assert "Request rate per route" in linked and "p95 latency per route" in linked
    for p in speech["panels"]:
        for link in p["fieldConfig"]["defaults"]["links"]:
            assert "${logs}" in link["url"] and "${__from}" in link["url"]


def test_every_expression_parses_with_promtool(tmp_path):
    """Each expression becomes a recording rule in a temporary rules file; `promtool check rules` parses all."""
    rules = []
    for i, (_, _, expr) in enumerate(_exprs()):
        for var, value in _VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown dashboard variable in {expr}"
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    (tmp_path / "exprs.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    r = run_promtool("check", "rules", "--lint=none", tmp_path / "exprs.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout


def test_every_expression_reads_only_exported_metrics():
    exported = exported_names() | BUILTIN_SERIES
    for name, title, expr in _exprs():
        names = metric_names(expr)
        assert names, (name, title, expr)
        assert names <= exported, (name, title, names - exported)


def test_provisioning_points_at_the_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "coachup.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/coachup"
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "coachup.yml").read_text())["datasources"]
    assert [d["type"] for d in ds] == ["prometheus"]
