"""The finalize callback to the front end, in-process against a real store and a local finalize route that
checks what the front end's route checks (tests/support/finalize_route.py). The same delivery through a real
worker, its retries on a real broker and its dead letter are in tests/test_frontend_contract.py."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from coachup.assessment.skills import SKILLS
from coachup.persist import finalize_payload, skill_hash
from coachup.settings import SettingsError, load_settings
from coachup.store.models import Job
from tests.conftest import TEST_HASH_SECRET
from tests.support.finalize_route import FinalizeRoute, check_payload
from tests.workers.test_assessment_task import _closed_group_with_job

SALT, SECRET = "test-skill-salt-9c1", "persist-secret-1"
RID = "k3j9x0q2ab"  # a base36 request id, as the front end sends


@pytest.fixture
def route():
    route = FinalizeRoute(secret=SECRET, salt=SALT, skill_ids=[s.id for s in SKILLS])
    yield route
    route.close()


def _app(tmp_path, store_url, route, **extra: str):
    from workers import create_celery

    return create_celery(
        load_settings(
            {
                "COACHUP_DATA_DIR": str(tmp_path),
                "COACHUP_DATABASE_URL": store_url,
                "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
                "ASSESSMENTS_BACKOFF_BASE_MS": "10",
                "PERSIST_ASSESSMENTS_URL": route.url,
                "PERSIST_ASSESSMENTS_SECRET": SECRET,
                "SKILL_HASH_SALT": SALT,
                "PERSIST_ASSESSMENTS_TIMEOUT_S": "1",
                **extra,
            }
        )
    )


def _finalize_jobs(app, group_id: str) -> list[Job]:
    with app.coachup.store.session() as s:
        return list(s.scalars(select(Job).where(Job.kind == "finalize", Job.group_id == group_id)))


def test_skill_hash_is_sha256_of_the_id_then_the_salt_in_lowercase_hex():
    expected = hashlib.sha256(b"clarity_eloquence" + SALT.encode()).hexdigest()
    assert skill_hash("clarity_eloquence", SALT) == expected == expected.lower()
    assert expected != hashlib.sha256(SALT.encode() + b"clarity_eloquence").hexdigest()  # the old API's order


def test_start_up_is_refused_with_a_callback_url_and_no_salt():
    with pytest.raises(SettingsError, match="SKILL_HASH_SALT"):
        load_settings({"PERSIST_ASSESSMENTS_URL": "http://127.0.0.1:3000/api/assessments/convex/finalize"})
    assert load_settings({"PERSIST_ASSESSMENTS_URL": "http://x/f", "SKILL_HASH_SALT": "s"}).skill_hash_salt == "s"


def test_the_payload_passes_the_routes_checks_for_new_and_stored_summaries():
    summary = {
        "rubricVersion": "v2",
        "skillAssessments": [
            {  # CONTRACTS.md §1
                "skill": {"id": "clarity_eloquence", "name": "Clarity", "category": "communication"},
                "skillId": "clarity_eloquence",
                "level": 7,
                "metCriteria": ["Sentences average 20 words or fewer."],
                "unmetCriteria": [],
                "feedback": ["Lead with the point."],
            },
            # a summary stored before it: criterion ids and one feedback string
            {"skillId": "conciseness", "level": 3, "metCriteria": ["low_waste_words"], "feedback": "Cut filler."},
            {"skill": {"id": "fluency_filler"}, "level": None, "metCriteria": [], "feedback": []},  # too little speech
        ],
        "meta": {"provider": "heuristic", "model": "heuristic-v1", "skillsCount": 3, "tokensIn": 0},
    }
    payload, skipped = finalize_payload("sess", "grp", summary, SALT)
    assert check_payload(payload) is None and skipped == 1
    items = payload["summary"]["skillAssessments"]
    assert [i["skillHash"] for i in items] == [skill_hash("clarity_eloquence", SALT), skill_hash("conciseness", SALT)]
    assert items[1]["feedback"] == ["Cut filler."] and payload["rubricVersion"] == "v2"
    assert "skill" not in items[0] and "skillId" not in items[0]  # the front end gets hashes, never skill ids
    # nothing assessed: nothing to send (the route refuses an empty list)
    assert finalize_payload("sess", "grp", {"skillAssessments": [summary["skillAssessments"][2]]}, SALT) == (None, 1)
    # the route's own checks are not a rubber stamp
    assert check_payload({**payload, "rubricVersion": "v1"}) == "rubricVersion must be 'v2'"
    bad = {**payload, "summary": {"skillAssessments": [{**items[0], "level": 11}]}}
    assert "level" in check_payload(bad)


def test_the_assessment_queues_the_callback_and_never_waits_for_it(tmp_path, store_url, route):
    # Given a front end whose finalize route is down for two requests
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    route.outage("sess", [503, 503])

    # When the assessment runs (and runs again, as a redelivery would)
    first = app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id, headers={"requestId": RID})
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id, headers={"requestId": RID})

    # Then it is done without having called the front end, and one callback job waits
    store = app.coachup.store
    assert first.successful() and store.get_job(job_id)["status"] == "done" and route.answers == {}
    (callback,) = _finalize_jobs(app, "grp1")
    assert callback.status == "queued"

    # When the callback job runs: 503, 503 (retried with backoff), then delivered once
    result = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id, headers={"requestId": RID})
    assert result.successful(), result.result
    assert route.answers["sess"] == [503, 503, 200]
    (payload,) = route.accepted["sess"]
    assert {route.resolve(i["skillHash"]) for i in payload["summary"]["skillAssessments"]} <= {s.id for s in SKILLS}
    assert all(h["Authorization"] == f"Bearer {SECRET}" and h["x-request-id"] == RID for h in route.requests["sess"])
    job = store.get_job(callback.id)
    assert job["status"] == "done" and job["attempts"] == 3 and job["result"]["delivered"] is True

    # and a redelivered callback job posts nothing more
    app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)
    assert route.answers["sess"] == [503, 503, 200]


def test_a_refusal_is_permanent_and_not_retried(tmp_path, store_url, route):
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")
    route.secret = "rotated-on-the-front-end"

    result = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    assert result.failed() and getattr(result.result, "type", None) == "persist_rejected"
    assert route.answers["sess"] == [401]
    job = app.coachup.store.get_job(callback.id)
    assert job["status"] == "failed" and job["error"]["type"] == "persist_rejected"
    assert app.coachup.store.get_job(job_id)["status"] == "done"  # the assessment itself is untouched


def test_a_callback_that_times_out_is_retried(tmp_path, store_url, route):
    # Given a finalize route that holds the first request longer than PERSIST_ASSESSMENTS_TIMEOUT_S (1 s)
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")
    route.stall("sess", 2.5)

    result = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    # Then the timed-out attempt is retried and the retry delivers it
    assert result.successful(), result.result
    assert route.accepted["sess"] and app.coachup.store.get_job(callback.id)["attempts"] == 2


# The error handling the docs promise (workers/tasks/callbacks.py, docs/assessments.md "The finalize
# callback"): each test below fails when its branch is removed.


def test_a_broker_that_refuses_the_callback_leaves_the_assessment_done_and_the_row_in_the_outbox(
    tmp_path, store_url, route, caplog
):
    from coachup.store import outbox
    from tests.support.services import refused_port

    # Given a broker that refuses every publish
    app = _app(tmp_path, store_url, route, COACHUP_BROKER_URL=f"redis://127.0.0.1:{refused_port()}/0")
    job_id = _closed_group_with_job(app)

    # When the assessment runs and cannot queue its callback
    with caplog.at_level("WARNING", logger="coachup.relay"):
        result = app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id, headers={"requestId": RID})

    # Then the assessment is still done: the callback's failure is never the assessment's
    assert result.successful(), result.result
    assert app.coachup.store.get_job(job_id)["status"] == "done"
    # and the callback's row stays queued in the outbox, for the relay's next pass
    (callback,) = _finalize_jobs(app, "grp1")
    assert callback.status == "queued" and outbox.unpublished(app.coachup.store, callback.id)
    # and the relay's warning names only the error's class
    (line,) = [r for r in caplog.records if getattr(r, "event", None) == "outbox_publish_deferred"]
    assert line.reason == "OperationalError" and route.answers == {}  # the class only, never a URL


def test_a_429_is_retried_and_then_delivered(tmp_path, store_url, route):
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")
    route.outage("sess", [429])

    result = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    assert result.successful(), result.result
    assert route.answers["sess"] == [429, 200]
    job = app.coachup.store.get_job(callback.id)
    assert job["status"] == "done" and job["attempts"] == 2 and job["result"]["httpStatus"] == 200


def test_an_unreachable_finalize_route_is_retried_until_the_budget_runs_out(tmp_path, store_url, route):
    from tests.support.services import refused_port

    # Given a callback job queued while the front end was reachable
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")

    # When it runs against an address that refuses connections, with a budget of 2 retries
    down = _app(
        tmp_path,
        store_url,
        route,
        PERSIST_ASSESSMENTS_URL=f"http://127.0.0.1:{refused_port()}/api/assessments/convex/finalize",
        PERSIST_ASSESSMENTS_MAX_RETRIES="2",
    )
    result = down.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    # Then it ran three times (the first try and two retries) and failed as unavailable, not as refused
    assert result.failed() and getattr(result.result, "type", None) == "upstream_unavailable", result.result
    job = down.coachup.store.get_job(callback.id)
    assert job["status"] == "failed" and job["attempts"] == 3 and job["error"]["type"] == "upstream_unavailable"
    assert route.answers == {}


def test_a_redirect_is_a_refusal_and_is_not_retried(tmp_path, store_url, route):
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")
    route.outage("sess", [302, 302])

    result = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    assert result.failed() and getattr(result.result, "type", None) == "persist_rejected"
    assert route.answers["sess"] == [302] and not route.accepted.get("sess")
    assert app.coachup.store.get_job(callback.id)["status"] == "failed"


def test_a_callback_whose_url_was_removed_is_kept_for_a_redrive_and_sends_nothing(tmp_path, store_url, route):
    # Given a callback job queued while PERSIST_ASSESSMENTS_URL was set
    app = _app(tmp_path, store_url, route)
    job_id = _closed_group_with_job(app)
    app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    (callback,) = _finalize_jobs(app, "grp1")

    # When a worker without the URL runs it
    unconfigured = _app(tmp_path, store_url, route, PERSIST_ASSESSMENTS_URL="")
    result = unconfigured.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)

    # Then it fails for good (a redrive sends it once the URL is back), never started, nothing sent
    assert result.failed() and getattr(result.result, "type", None) == "provider_unconfigured"
    job = unconfigured.coachup.store.get_job(callback.id)
    assert job["status"] == "failed" and job["attempts"] == 0 and route.answers == {}

    # and once the URL is back, running it again delivers it
    again = app.tasks["callbacks.finalize"].apply(args=[callback.id], task_id=callback.id)
    assert again.successful(), again.result
    assert route.answers["sess"] == [200]
