"""The metric-name lexer the rule and dashboard checks rely on: it must not miss a name, nor report a label,
function, keyword, duration or dashboard variable as one."""

from __future__ import annotations

from tests.support.promql import exported_names, metric_names


def test_finds_every_metric_and_nothing_else():
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route=~"POST /x"}[5m]))) > 1.5\n'
        'and on (queue) deriv(max by (queue) (b{queue="q"})[10m:1m]) > 0 or c offset 1h unless '
        "sum without (job) (increase(d_total[$__rate_interval])) / $planned_dau + 1e-9 * e:recorded"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d_total", "e:recorded"}


def test_a_misspelt_name_is_reported():
    assert metric_names('rate(coachup_http_request_total{status="500"}[5m])') == {"coachup_http_request_total"}
    assert "coachup_http_request_total" not in exported_names()
    assert "coachup_http_requests_total" in exported_names()
