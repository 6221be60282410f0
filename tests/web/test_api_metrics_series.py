"""The API's /metrics serves no dead series (families only workers move) and does serve build and process
metrics (issue 17, point 6)."""

from __future__ import annotations

from coachup.metrics import multiproc
from coachup.metrics.families import WORKER_ONLY_FAMILIES
from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET


def test_api_metrics_leave_out_worker_only_families_and_carry_build_info(tmp_path):
    from web import create_app

    env = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
    client = create_app(load_settings(env), configure_logs=False).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'coachup_build_info{python="' in text and "version=" in text
    served = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert served and not served & set(WORKER_ONLY_FAMILIES)
    as_json = client.get("/api/metrics").get_json()["metrics"]
    assert "coachup_build_info" in as_json and not set(as_json) & set(WORKER_ONLY_FAMILIES)


def test_the_multiprocess_scrape_adds_the_serving_process_metrics(tmp_path):
    text = multiproc.render(multiproc.collect_registry(tmp_path)).decode()
    assert "process_cpu_seconds_total" in text and "process_start_time_seconds" in text
