"""The API's outbox relay thread stops cleanly (issue 16 gap): between passes, at process exit, and a stop loses
nothing (every unpublished row stays in the outbox for the next relay). Real store (SQLite and PostgreSQL), real
Redis (a private one, stopped to hold the rows in the outbox)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from coachup.settings import load_settings
from coachup.store import outbox
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
TEXT = "I led the launch review and we shipped on Friday."


def _env(tmp_path, redis_url: str, store_url: str) -> dict[str, str]:
    return {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_BROKER_URL": redis_url,
        "COACHUP_DATABASE_URL": store_url,
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_WORKER_METRICS_PORT": "0",
        "COACHUP_OUTBOX_RETRY_S": "0.2",
    }


def _run(client) -> str:
    body = {"sessionId": "s-" + uuid.uuid4().hex[:8], "transcript": [{"role": "user", "content": TEXT}]}
    resp = client.post("/assessments/run", json=body)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()["taskId"]


def test_stop_ends_the_relay_thread_and_leaves_unpublished_rows_for_the_next_relay(tmp_path, store_url):
    from web import create_app

    redis = PrivateRedis()
    try:
        env = _env(tmp_path, redis.url, store_url)
        app = create_app(load_settings(env), configure_logs=False)
        rt = app.extensions["coachup"]
        relay = rt.celery.outbox_relay
        redis.stop()  # the broker down: the relay's passes are refused and it backs off
        job_id = _run(app.test_client())
        wait_until(lambda: relay.passes >= 1, timeout=30, what="a relay pass refused by the stopped broker")
        assert relay.running

        assert relay.stop(timeout=10), "the relay thread did not end"
        assert not relay.running
        assert outbox.unpublished(rt.store, job_id)  # nothing was lost by the stop

        # the next relay (here: the scheduler's pass) publishes it once the broker is back
        redis.start()
        from workers.relay import relay_pass

        wait_until(
            lambda: relay_pass(rt.celery, rt.store, rt.hasher, job_ids=[job_id]).published == 1,
            timeout=30,
            what="the next relay to publish the row the stopped one left",
        )
        assert not outbox.unpublished(rt.store, job_id)
        assert redis.client().llen("assessments") == 1
        assert not relay.running  # a stopped relay stays stopped until something wakes it again
    finally:
        redis.close()


def test_a_pass_that_is_told_to_stop_releases_the_rows_it_claimed(tmp_path, store_url):
    """A stop in the middle of a batch: the claimed, unpublished rows are claimable by the next relay at once
    (not after their lease), and none was published."""
    from web import create_app
    from workers.relay import relay_pass

    redis = PrivateRedis()
    try:
        app = create_app(load_settings(_env(tmp_path, redis.url, store_url)), configure_logs=False)
        rt = app.extensions["coachup"]
        redis.stop()  # the rows wait in the outbox: the API's thread only meets a refused broker
        ids = [_run(app.test_client()) for _ in range(3)]
        assert rt.celery.outbox_relay.stop(timeout=10)
        redis.start()
        # every row the broker refused is claimable again once its retry time has passed
        wait_until(lambda: _retry_passed(rt.store, ids), timeout=10, what="the refused rows' retry time")
        calls = iter([False, True, True, True])  # publish the first row, then be told to stop
        result = relay_pass(rt.celery, rt.store, rt.hasher, job_ids=ids, stopping=lambda: next(calls))
        assert (result.published, result.deferred) == (1, 2)
        left = outbox.claim(rt.store, lease_s=60, job_ids=ids)  # at once: not held by the stopped pass's lease
        assert len(left) == 2
        assert sum(outbox.unpublished(rt.store, i) for i in ids) == 2
    finally:
        redis.close()


def _retry_passed(store, ids: list[str]) -> bool:
    from sqlalchemy import func, select

    from coachup.store.models import Job, utcnow

    with store.session() as s:
        latest = s.scalar(select(func.max(Job.publish_claimed_until)).where(Job.id.in_(ids)))
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=utcnow().tzinfo)
    return latest is None or latest < utcnow()


_SCRIPT = """
import sys, uuid
from coachup.settings import load_settings
from tests.support.wait import wait_until
from web import create_app

app = create_app(load_settings())
relay = app.extensions["coachup"].celery.outbox_relay
body = {"sessionId": "s-" + uuid.uuid4().hex[:8], "transcript": [{"role": "user", "content": "We shipped it."}]}
assert app.test_client().post("/assessments/run", json=body).status_code == 202
wait_until(lambda: relay.passes >= 1, timeout=30, what="a refused pass")
print("relay running", relay.running, flush=True)
# the script ends here: nothing calls stop; the interpreter's exit must
"""


def test_the_relay_thread_stops_at_process_exit(tmp_path, store_url):
    """The process ends while its relay waits out a broker outage: `atexit` stops the thread (it logs
    `outbox_relay_stopped`), no logging error, and the row is still in the outbox."""
    redis = PrivateRedis()
    redis.close()  # a broker URL nothing answers on
    env = {**os.environ, **_env(tmp_path, redis.url, store_url), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "relay running True" in proc.stdout
    events = []
    for line in proc.stdout.splitlines():  # the JSON log is on stdout
        try:
            events.append(json.loads(line).get("event"))
        except ValueError:
            continue
    assert "outbox_relay_stopped" in events, proc.stdout[-3000:]
    assert "Logging error" not in proc.stderr, proc.stderr[-3000:]
    from coachup.store import create_store

    assert outbox.backlog(create_store(store_url))[0] == 1


def test_a_gunicorn_worker_stops_its_relay_thread_on_shutdown(tmp_path, store_url):
    """The real API (gunicorn, one worker) SIGTERMed while its relay waits out a broker outage: the worker's
    relay thread ends (`outbox_relay_stopped`, from `worker_exit` or exit) and the job row stays in the outbox."""
    import urllib.request

    from coachup.store import create_store
    from tests.support.api_server import ApiServer

    redis = PrivateRedis()
    redis.close()  # nothing answers on the broker URL
    api = ApiServer(_env(tmp_path, redis.url, store_url), tmp_path / "api.log", workers=1).wait_ready()
    try:
        body = json.dumps({"sessionId": "s-" + uuid.uuid4().hex[:8], "transcript": [{"role": "user", "content": TEXT}]})
        req = urllib.request.Request(
            api.url + "/assessments/run", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 202
        wait_until(lambda: api.events("outbox_publish_deferred"), timeout=30, what="a publish refused by the broker")
    finally:
        api.stop()
    assert api.events("outbox_relay_stopped"), api.log_text()[-3000:]
    assert "Logging error" not in api.log_text()
    assert outbox.backlog(create_store(store_url))[0] == 1
