"""Object-level authorization (issue 13): two users with real tokens from a local JWKS, on SQLite and PostgreSQL.

Every route that takes a session, group, job or audio id: the other user gets 404 `not_found` and nothing is
written; the owner gets 200. Also: same `sub` from two issuers is two owners, a token without `sub` is 401,
the admin token reads across owners (legacy rows included), and a worker's job never writes into a session
of another owner.
"""

from __future__ import annotations

import io
import os

import pytest
import requests
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store.models import Job, SessionRow, TranscriptTurn
from coachup.store.owners import LEGACY_OWNER
from coachup.store.summaries import SessionSummaryRow
from tests.conftest import TEST_HASH_SECRET
from tests.support.jwks import JwksServer
from tests.support.s3 import TEST_AWS_ENV, S3Server
from tests.support.services import EmbeddedBrokerServer

ADMIN = "own-admin-token-9"
ALICE_SESSION = "alice-sess-1"
TURN = {"messageId": "m1", "role": "user", "content": "I want to practise my pitch for Friday."}


@pytest.fixture(scope="module")
def idp():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    saved = {k: os.environ.get(k) for k in TEST_AWS_ENV}
    os.environ.update(TEST_AWS_ENV)
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _settings(tmp_path, store_url, idp, **extra):
    return load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_DATABASE_URL": store_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "COACHUP_ADMIN_TOKEN": ADMIN,
            "SPEECH_WAIT_MS": "0",
            **idp.env(),
            **extra,
        }
    )


def _api(settings):
    from web import create_app

    broker = EmbeddedBrokerServer(settings)  # the embedded broker's own server, as `make run` starts it
    return create_app(settings, configure_logs=False), broker


@pytest.fixture
def api(tmp_path, store_url, idp):
    app, broker = _api(_settings(tmp_path, store_url, idp))
    yield app
    broker.close()


@pytest.fixture
def api_s3(tmp_path, store_url, idp, s3):
    app, broker = _api(_settings(tmp_path, store_url, idp, **s3.env))
    yield app
    broker.close()


def _as(idp, sub: str, **claims) -> dict:
    return {"Authorization": f"Bearer {idp.token(sub=sub, **claims)}"}


def _count(app, model, *where) -> int:
    store = app.extensions["coachup"].store
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _assert_404(resp) -> None:
    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["type"] == "not_found"


def _alice_session(client, alice) -> None:
    resp = client.post("/messages/ingest", headers=alice, json={"sessionId": ALICE_SESSION, **TURN})
    assert resp.status_code == 200, resp.get_json()


def test_every_session_route_answers_404_to_another_user_and_writes_nothing(api, idp):
    client = api.test_client()
    alice, bob = _as(idp, "alice"), _as(idp, "bob")
    _alice_session(client, alice)
    turns_before = _count(api, TranscriptTurn, TranscriptTurn.session_id == ALICE_SESSION)
    with api.extensions["coachup"].store.session() as s:
        owner = s.get(SessionRow, ALICE_SESSION).owner
    assert owner.startswith("ow:") and "alice" not in owner  # a keyed hash, never the raw subject
    jobs_before = _count(api, Job)

    # Bob's writes into Alice's session: refused, nothing stored
    writes = [
        ("/messages/ingest", {"sessionId": ALICE_SESSION, "messageId": "b1", "role": "user", "content": "mine now"}),
        ("/assessments/run", {"sessionId": ALICE_SESSION, "transcript": [{"role": "user", "content": "mine"}]}),
        ("/assessments/run", {"sessionId": ALICE_SESSION}),
        (
            "/api/v1/session-summary/generate",
            {"sessionId": ALICE_SESSION, "messages": [{"role": "user", "content": "x"}]},
        ),
        ("/api/v1/tts", {"sessionId": ALICE_SESSION, "text": "hello there", "wait": False}),
    ]
    for path, body in writes:
        _assert_404(client.post(path, headers=bob, json=body))
    upload = {"audio": (io.BytesIO(b"RIFF0000WAVEfmt "), "clip.wav", "audio/wav"), "sessionId": ALICE_SESSION}
    _assert_404(client.post("/api/v1/stt", headers=bob, data=upload, content_type="multipart/form-data"))
    assert not list((api.extensions["coachup"].settings.data_dir / "audio").rglob("*.*"))  # no audio stored
    assert _count(api, TranscriptTurn, TranscriptTurn.session_id == ALICE_SESSION) == turns_before
    assert _count(api, Job) == jobs_before
    assert _count(api, SessionSummaryRow, SessionSummaryRow.session_id == ALICE_SESSION) == 0

    # Bob's reads of Alice's session: 404; Alice's own: 200
    reads = [
        f"/assessments/{ALICE_SESSION}",
        f"/api/v1/transcripts?sessionId={ALICE_SESSION}",
        f"/chat/tracked-skills?session_id={ALICE_SESSION}",
        f"/api/v1/session-summary?sessionId={ALICE_SESSION}",
        f"/chat/stream?sessionId={ALICE_SESSION}&prompt=hi",
    ]
    for path in reads:
        _assert_404(client.get(path, headers=bob))
        ok = client.get(path, headers=alice)
        assert ok.status_code == 200, (path, ok.get_data(as_text=True)[:300])
        ok.close()
    transcript = client.get(f"/api/v1/transcripts?sessionId={ALICE_SESSION}", headers=alice).get_json()
    assert [t["content"] for t in transcript["items"]] == [TURN["content"]]

    # Alice's own writes still pass: her session is hers
    ok = client.post(
        "/api/v1/session-summary/generate",
        headers=alice,
        json={"sessionId": ALICE_SESSION, "messages": [{"role": "user", "content": TURN["content"]}]},
    )
    assert ok.status_code == 200, ok.get_json()
    run = client.post("/assessments/run", headers=alice, json={"sessionId": ALICE_SESSION})
    assert run.status_code == 202, run.get_json()


def test_jobs_and_tts_audio_are_their_owners_only(api, idp):
    from coachup.speech.storage import LocalAudioStorage

    client = api.test_client()
    alice, bob = _as(idp, "alice"), _as(idp, "bob")
    queued = client.post("/api/v1/tts", headers=alice, json={"text": "hello there", "wait": False})
    assert queued.status_code == 202, queued.get_json()
    job_id = queued.get_json()["jobId"]
    _assert_404(client.get(f"/api/v1/jobs/{job_id}", headers=bob))
    assert client.get(f"/api/v1/jobs/{job_id}", headers=alice).status_code == 200
    # the job finished (as the worker leaves it): its audio is Alice's to fetch, never Bob's
    rt = api.extensions["coachup"]
    key = "audio/2026-01-01/" + "a" * 32 + ".wav"
    LocalAudioStorage(rt.settings.data_dir).put(key, b"RIFF0000WAVE", "audio/wav")
    rt.store.mark_job(job_id, "done", result={"objectKey": key, "uploaded": False, "provider": "mock"})
    _assert_404(client.get(f"/api/v1/tts/audio/{job_id}", headers=bob))
    audio = client.get(f"/api/v1/tts/audio/{job_id}", headers=alice)
    assert audio.status_code == 200 and audio.data == b"RIFF0000WAVE"


def test_presigned_audio_and_stt_by_object_key_are_their_owners_only(api_s3, idp):
    api = api_s3
    client = api.test_client()
    alice, bob = _as(idp, "alice"), _as(idp, "bob")
    put = client.post(
        "/api/v1/storage/audio/presign", headers=alice, json={"contentType": "audio/wav", "sizeBytes": 12}
    )
    assert put.status_code == 200, put.get_json()
    key = put.get_json()["objectKey"]
    uploaded = requests.put(
        put.get_json()["url"], data=b"RIFF0000WAVE", headers={"Content-Type": "audio/wav"}, timeout=5
    )
    assert uploaded.status_code == 200
    # Bob can neither presign a download of Alice's object nor have it transcribed
    _assert_404(client.get(f"/api/v1/storage/audio/presign?objectKey={key}", headers=bob))
    _assert_404(client.post("/api/v1/stt", headers=bob, json={"objectKey": key, "wait": False}))
    assert _count(api, Job, Job.kind == "stt") == 0
    # an object this API never handed out is nobody's
    stray = "audio/2026-01-01/" + "b" * 32 + ".wav"
    _assert_404(client.get(f"/api/v1/storage/audio/presign?objectKey={stray}", headers=alice))
    # Alice can
    assert client.get(f"/api/v1/storage/audio/presign?objectKey={key}", headers=alice).status_code == 200
    stt = client.post("/api/v1/stt", headers=alice, json={"objectKey": key, "wait": False})
    assert stt.status_code == 202, stt.get_json()


def test_same_subject_from_two_issuers_is_two_owners(tmp_path, store_url, idp):
    from web import create_app

    # the issuer unchecked (not production), so both issuers' tokens verify
    settings = _settings(tmp_path, store_url, idp, AUTH_ISSUER="")
    broker = EmbeddedBrokerServer(settings)
    try:
        client = create_app(settings, configure_logs=False).test_client()
        first = _as(idp, "alice", iss="https://idp-one.test/")
        second = _as(idp, "alice", iss="https://idp-two.test/")
        assert client.post("/messages/ingest", headers=first, json={"sessionId": "s-iss", **TURN}).status_code == 200
        _assert_404(client.get("/assessments/s-iss", headers=second))
        _assert_404(client.post("/messages/ingest", headers=second, json={"sessionId": "s-iss", **TURN}))
        assert client.get("/assessments/s-iss", headers=first).status_code == 200
    finally:
        broker.close()


def test_a_token_without_sub_is_refused(api, idp):
    client = api.test_client()
    headers = {"Authorization": f"Bearer {idp.token(sub=None)}"}
    resp = client.post("/messages/ingest", headers=headers, json={"sessionId": "s-nosub", **TURN})
    assert resp.status_code == 401 and resp.get_json()["error"]["type"] == "unauthenticated"
    assert _count(api, SessionRow, SessionRow.session_id == "s-nosub") == 0
    blank = {"Authorization": f"Bearer {idp.token(sub='  ')}"}
    assert client.get("/assessments/s-nosub", headers=blank).status_code == 401


def test_the_admin_token_reads_across_owners_and_legacy_rows(api, idp):
    client = api.test_client()
    alice, bob = _as(idp, "alice"), _as(idp, "bob")
    _alice_session(client, alice)
    store = api.extensions["coachup"].store
    # a session written before owners existed (what migration step 3 leaves)
    store.ingest_turn(
        session_id="old-sess",
        message_id="m0",
        role="user",
        content="old",
        ts=None,
        group_id=None,
        end_reason=None,
        max_turns=12,
    )
    from sqlalchemy import update

    with store.session() as s, s.begin():
        s.execute(update(SessionRow).where(SessionRow.session_id == "old-sess").values(owner=LEGACY_OWNER))
    for user in (alice, bob):
        _assert_404(client.get("/api/v1/transcripts?sessionId=old-sess", headers=user))
        _assert_404(client.post("/messages/ingest", headers=user, json={"sessionId": "old-sess", **TURN}))
    operator = {**bob, "x-admin-token": ADMIN}
    assert client.get("/api/v1/transcripts?sessionId=old-sess", headers=operator).status_code == 200
    assert client.get(f"/api/v1/transcripts?sessionId={ALICE_SESSION}", headers=operator).status_code == 200
    # a wrong admin token is just Bob
    _assert_404(client.get("/api/v1/transcripts?sessionId=old-sess", headers={**bob, "x-admin-token": "nope"}))


def test_a_race_for_a_new_session_has_exactly_one_owner(api, idp):
    import threading

    client_headers = [_as(idp, f"user-{i}") for i in range(6)]
    statuses: list[int] = []

    def write(headers):
        c = api.test_client()
        statuses.append(
            c.post("/messages/ingest", headers=headers, json={"sessionId": "contested", **TURN}).status_code
        )

    threads = [threading.Thread(target=write, args=(h,)) for h in client_headers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [404] * 5, statuses
    assert _count(api, TranscriptTurn, TranscriptTurn.session_id == "contested") == 1


def test_dev_mode_is_one_dev_subject_and_says_so(tmp_path, store_url, caplog):
    import logging

    from coachup.cli.supervisor import _banner
    from web import create_app

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_DATABASE_URL": store_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "dev",
        }
    )
    broker = EmbeddedBrokerServer(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="coachup.api"):
            app = create_app(settings, configure_logs=False)
        disabled = [r for r in caplog.records if getattr(r, "event", "") == "auth_disabled"]
        assert disabled and "one dev subject" in disabled[0].__dict__["reason"]
        client = app.test_client()
        # no token at all: every request is the dev subject, so what one writes the next reads
        assert client.post("/messages/ingest", json={"sessionId": "dev-sess", **TURN}).status_code == 200
        assert client.get("/api/v1/transcripts?sessionId=dev-sess").status_code == 200
        assert (
            client.post("/messages/ingest", json={"sessionId": "dev-sess", **TURN, "messageId": "m2"}).status_code
            == 200
        )
    finally:
        broker.close()
    lines = _banner(settings, type("B", (), {"describe": lambda self: "embedded"})(), "file")
    assert any("dev subject" in line for line in lines)
