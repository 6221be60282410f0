"""The compose stack and the Dockerfile. `docker compose config` needs the compose v2 plugin, which this
machine's docker client lacks (`docker compose` is an unknown command), so the file is validated against the
compose-spec JSON schema that check-jsonschema ships (`vendor.compose-spec`) plus structural checks."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from celeryconfig import QUEUES
from tests.deploy.conftest import DEPLOY, ROOT

COMPOSE = DEPLOY / "compose" / "compose.yaml"
_SERVICES = {
    "redis",
    "postgres",
    "aws",
    "api",
    "worker-assessments",
    "worker-speech",
    "worker-deadletter",
    "beat",
    "flower",
    "prometheus",
    "alertmanager",
    "grafana",
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_spec_schema():
    r = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_part_of_the_stack_is_there():
    services = _compose()["services"]
    assert set(services) == _SERVICES
    assert "--appendonly" in services["redis"]["command"] and "yes" in services["redis"]["command"]
    assert services["api"]["command"] == ["api"] and services["flower"]["command"][0] == "flower"
    # beat has no port: like the k8s probes, compose asks `coachup probe beat` (its pulse file)
    assert services["beat"]["healthcheck"]["test"] == ["CMD", "coachup", "probe", "beat"]


def test_worker_families_consume_every_queue_and_prometheus_scrapes_each():
    services = _compose()["services"]
    consumed = set()
    for name, svc in services.items():
        if name.startswith("worker-"):
            cmd = svc["command"]
            consumed.update(cmd[cmd.index("-Q") + 1].split(","))
    assert consumed == set(QUEUES)
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    workers = next(j for j in scrape if j["job_name"] == "coachup-workers")["static_configs"][0]["targets"]
    assert sorted(t.split(":")[0] for t in workers) == sorted(n for n in services if n.startswith("worker-"))


def test_monitoring_mounts_rules_dashboards_and_routes():
    services = _compose()["services"]
    prom = " ".join(services["prometheus"]["volumes"])
    assert "../prometheus/alerts.yml:/etc/prometheus/alerts.yml" in prom
    grafana = " ".join(services["grafana"]["volumes"])
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/coachup" in grafana
    assert "../grafana/provisioning:/etc/grafana/provisioning" in grafana
    assert "../alertmanager/alertmanager.yml" in services["alertmanager"]["volumes"][0]


def test_no_secret_in_the_file_and_every_required_variable_in_env_example():
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "compose" / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required == example
    assert not re.search(r"(PASSWORD|SECRET|API_KEY)\w*: +(?!\$\{)\S", text.replace("AWS_SECRET_ACCESS_KEY: local", ""))


def test_dockerfile_runs_every_role_from_one_image():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["coachup"]' in text
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
    from coachup.cli import main

    assert {"api", "worker", "beat", "flower"} <= set(main.commands)
