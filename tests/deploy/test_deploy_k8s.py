"""Kubernetes manifests: core resources pass `kubernetes-validate --strict` (schemas bundled, offline); KEDA
resources pass `check-jsonschema` against the CRD schemas in deploy/k8s/schemas/ (no PyPI package ships
them); the scaling, probes, grace periods and secret references are what docs/deploy.md promises."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from celeryconfig import QUEUES, TASK_ROUTES
from coachup.settings import ENV_VARS, load_settings
from tests.deploy.conftest import DEPLOY

K8S = DEPLOY / "k8s"
CORE = sorted(K8S.glob("*.yaml"))
SCHEMAS = {
    "ScaledObject": K8S / "schemas" / "keda-scaledobject.json",
    "TriggerAuthentication": K8S / "schemas" / "keda-triggerauthentication.json",
}
# tasks without a hard time limit, and why that is acceptable: a periodic store sweep (one query per run)
_UNBOUNDED_TASKS = {"interactions.sweep"}


def _docs(paths) -> list[dict]:
    return [d for p in paths for d in yaml.safe_load_all(Path(p).read_text()) if d]


def _by_kind(kind: str, paths=CORE) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _docs(paths) if d["kind"] == kind}


def _workers() -> dict[str, dict]:
    return {n: d for n, d in _by_kind("Deployment").items() if n.startswith("coachup-worker-")}


def _queues(deployment: dict) -> list[str]:
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("-Q") + 1].split(",")


def _tool(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, timeout=180)


def test_core_manifests_pass_kubernetes_validate_strict():
    r = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", *map(str, CORE)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" passed for resource ") == len(_docs(CORE))


def test_kubernetes_validate_rejects_a_broken_deployment(tmp_path):
    """The validator is not a rubber stamp: an unknown field fails strict validation."""
    api = _by_kind("Deployment")["coachup-api"]
    api["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(api))
    r = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", str(tmp_path / "bad.yaml")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode != 0


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_keda_resources_match_the_crd_schema(kind):
    files = sorted(p for p in K8S.glob("keda/*/*.yaml") if _by_kind(kind, [p]))
    assert files
    r = _tool("check_jsonschema", "--schemafile", SCHEMAS[kind], *files)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_scaledobject_schema_rejects_mistakes(tmp_path):
    so = next(iter(_by_kind("ScaledObject", K8S.glob("keda/redis/*.yaml")).values()))
    for broken in (
        {**so, "spec": {**so["spec"], "triggers": []}},
        {**so, "spec": {**so["spec"], "minReplicas": 1}},
        {**so, "spec": {**so["spec"], "triggers": [{"type": "redis", "metadata": {"listLength": 20}}]}},
    ):
        (tmp_path / "so.yaml").write_text(yaml.safe_dump(broken))
        assert _tool("check_jsonschema", "--schemafile", SCHEMAS["ScaledObject"], tmp_path / "so.yaml").returncode == 1


def test_required_deployments_and_services():
    deployments = _by_kind("Deployment")
    assert {
        "coachup-api",
        "coachup-api-stream",
        "coachup-worker-assessments",
        "coachup-worker-speech",
        "coachup-flower",
        "coachup-beat",
    } == set(deployments)
    # every Deployment but the scheduler (no port) has its Service
    assert set(_by_kind("Service")) == set(deployments) - {"coachup-beat"}
    assert deployments["coachup-beat"]["spec"]["replicas"] == 1
    assert deployments["coachup-beat"]["spec"]["strategy"]["type"] == "Recreate"


def test_workers_consume_every_queue():
    assert {q for d in _workers().values() for q in _queues(d)} == set(QUEUES)


@pytest.mark.parametrize("broker", ["redis", "sqs"])
def test_every_worker_deployment_scales_on_its_queue_depth(broker):
    scaled = _by_kind("ScaledObject", K8S.glob(f"keda/{broker}/*.yaml"))
    defaults = {v.name: v.default for v in ENV_VARS}
    config = _by_kind("ConfigMap")["coachup-config"]["data"]
    auth = _by_kind("TriggerAuthentication", K8S.glob(f"keda/{broker}/*.yaml"))
    for name, deployment in _workers().items():
        so = scaled[name]
        assert so["spec"]["scaleTargetRef"]["name"] == name
        assert 1 <= so["spec"]["minReplicaCount"] < so["spec"]["maxReplicaCount"]
        queues = [q for q in _queues(deployment) if q != "deadletter"]  # the DLQ is drained, never scaled on
        watched = []
        for trigger in so["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in auth
            meta = trigger["metadata"]
            if broker == "redis":
                assert trigger["type"] == "redis" and int(meta["listLength"]) > 0
                assert meta["addressFromEnv"] in config  # read from the scale target's environment
                watched.append(meta["listName"])
            else:
                assert trigger["type"] == "aws-sqs-queue" and int(meta["queueLength"]) > 0 and meta["awsRegion"]
                watched.append(meta["queueURL"].rsplit("/", 1)[1])
        if broker == "sqs":  # the default SQS queue names of coachup/settings.py
            queues = [defaults[f"COACHUP_SQS_{q.upper()}_QUEUE"] for q in queues]
        assert sorted(watched) == sorted(queues), name


def test_grace_period_outlasts_soft_shutdown_plus_the_longest_task():
    from workers.app import create_celery

    app = create_celery(load_settings())
    soft = float(app.conf.worker_soft_shutdown_timeout or 0)
    for name, deployment in _workers().items():
        queues = set(_queues(deployment))
        limits = []
        for task_name, task in app.tasks.items():
            route = next((r["queue"] for pat, r in TASK_ROUTES.items() if fnmatch.fnmatch(task_name, pat)), None)
            if route not in queues:
                continue
            if task.time_limit is None:
                assert task_name in _UNBOUNDED_TASKS, f"{task_name} has no hard time limit"
                continue
            limits.append(float(task.time_limit))
        assert limits, name
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > soft + max(limits), (name, grace, soft, max(limits))


def test_probes_hit_the_health_routes():
    deployments = _by_kind("Deployment")
    for name in ("coachup-api", "coachup-api-stream"):
        api = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert api["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert api["readinessProbe"]["httpGet"]["path"] == "/api/health", name
    for name in (*_workers(), "coachup-flower"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"] and container["readinessProbe"], name
    beat = deployments["coachup-beat"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):  # beat has no port: its pulse file (docs/runbooks/liveness.md)
        assert beat[probe]["exec"]["command"] == ["coachup", "probe", "beat"]


def test_config_and_secrets_by_reference_only():
    docs = _docs([*CORE, *K8S.glob("keda/*/*.yaml")])
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created out of band, never committed"
    secret_like = {v.name for v in ENV_VARS if any(w in v.name for w in ("SECRET", "KEY", "PASSWORD", "AUTH"))}
    secret_like |= {"COACHUP_BROKER_URL", "COACHUP_RESULT_BACKEND", "COACHUP_DATABASE_URL"}
    assert not secret_like & set(_by_kind("ConfigMap")["coachup-config"]["data"])
    for name, d in _by_kind("Deployment").items():
        refs = d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "coachup-config"}} in refs, name


def _ingress_backend(ingress: dict, path: str) -> str | None:
    """The Service an Ingress sends `path` to, by the Kubernetes rules: an Exact match wins, else the longest
    Prefix match on whole path segments."""
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    for p in paths:
        if p["pathType"] == "Exact" and p["path"] == path:
            return p["backend"]["service"]["name"]
    best, name = -1, None
    for p in paths:
        prefix = p["path"].rstrip("/")
        if p["pathType"] == "Prefix" and (path == prefix or path.startswith(prefix + "/")) and len(prefix) > best:
            best, name = len(prefix), p["backend"]["service"]["name"]
    return name


def test_the_ingress_sends_chat_streams_to_api_processes_of_their_own_and_everything_else_to_the_api(
    offline_settings,
):
    """One base URL for the front end; open streams never share a process (a GIL) with intake
    (docs/chat.md, "Capacity and tuning"). Every route the app serves is checked, so a new route, or a renamed
    stream route, cannot land on the wrong Deployment unnoticed."""
    from web.app import create_app

    ingress = _by_kind("Ingress")["coachup"]
    app = create_app(offline_settings, configure_logs=False)
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert "/chat/stream" in rules
    for rule in sorted(rules):
        path = re.sub(r"<[^>]+>", "x", rule)  # `/jobs/<job_id>` -> `/jobs/x`
        want = "coachup-api-stream" if rule == "/chat/stream" else "coachup-api"
        assert _ingress_backend(ingress, path) == want, rule
    assert _ingress_backend(ingress, "/chat/streams") == "coachup-api"  # Exact: no neighbour is swept along
    # each backend is a Service that selects its Deployment's pods on a port the pods name
    services, deployments = _by_kind("Service"), _by_kind("Deployment")
    for name in ("coachup-api", "coachup-api-stream"):
        pod = deployments[name]["spec"]["template"]
        assert services[name]["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        assert (
            services[name]["spec"]["selector"]
            != services["coachup-api" if name != "coachup-api" else "coachup-api-stream"]["spec"]["selector"]
        )
        assert {"name": "http", "containerPort": 8000} in pod["spec"]["containers"][0]["ports"]
    # the same program: image, arguments and configuration, so the stream pods answer exactly as the API would
    a, b = (deployments[n]["spec"]["template"]["spec"]["containers"][0] for n in ("coachup-api", "coachup-api-stream"))
    assert (a["image"], a["args"], a["envFrom"]) == (b["image"], b["args"], b["envFrom"])


def test_the_ingress_passes_streams_unbuffered_for_their_whole_life_and_the_largest_upload():
    settings = load_settings({})
    notes = _by_kind("Ingress")["coachup"]["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= settings.chat_stream_max_s
    size = notes["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m")
    from web.routes.speech import _MULTIPART_SLACK

    largest = max(settings.max_content_length, settings.stt_max_audio_bytes + _MULTIPART_SLACK)
    assert int(size[:-1]) * 1024 * 1024 >= largest
