"""The speech, storage, skills and transcripts routes answer typed 4xx/5xx JSON before anything is queued
(in-process API on the embedded broker, no worker)."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import func, select

from coachup.speech.audio import tone_wav
from coachup.store.models import Job
from tests.support.broker import waiting_messages
from tests.support.outbox import wait_published
from web.auth import AUTH_EXTENSION


def _jobs(app) -> int:
    store = app.extensions["coachup"].store
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _stt_upload(client, audio: bytes, mimetype: str = "audio/wav", **fields):
    data = {"audio": (io.BytesIO(audio), "clip.wav", mimetype), **fields}
    return client.post("/api/v1/stt", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize(
    "send,status,kind",
    [
        (lambda c: _stt_upload(c, b"x" * 5000), 413, "payload_too_large"),  # > STT_MAX_AUDIO_BYTES
        (lambda c: _stt_upload(c, b"x" * 200_000), 413, "payload_too_large"),  # > the request cap
        (lambda c: _stt_upload(c, b"RIFF", "text/plain"), 415, "unsupported_media_type"),
        (lambda c: _stt_upload(c, b""), 400, "validation_error"),
        (
            lambda c: c.post("/api/v1/stt", data={"sessionId": "s1"}, content_type="multipart/form-data"),
            400,
            "validation_error",
        ),
        (lambda c: _stt_upload(c, b"RIFF", languageHint="english please"), 400, "validation_error"),
        (lambda c: c.post("/api/v1/stt", json={"sessionId": "s1"}), 400, "validation_error"),
        (lambda c: c.post("/api/v1/stt", json={"audioUrl": "https://127.0.0.1/a.wav"}), 400, "audio_url_rejected"),
        (
            lambda c: c.post("/api/v1/stt", json={"audioUrl": "https://[::ffff:10.0.0.1]/a.wav"}),
            400,
            "audio_url_rejected",
        ),
        (lambda c: c.post("/api/v1/stt", json={"audioUrl": "http://example.com/a.wav"}), 400, "audio_url_rejected"),
        (lambda c: c.post("/api/v1/stt", json={"objectKey": "audio/2026-11-22/../../x.wav"}), 400, "validation_error"),
        (
            lambda c: c.post("/api/v1/stt", json={"objectKey": "audio/2026-11-22/" + "a" * 32 + ".wav"}),
            501,
            "storage_unconfigured",
        ),
        (lambda c: c.post("/api/v1/stt", data="raw", content_type="text/plain"), 415, "unsupported_media_type"),
        (lambda c: c.post("/api/v1/tts", json={}), 400, "validation_error"),
        (lambda c: c.post("/api/v1/tts", json={"text": "   "}), 400, "validation_error"),
        (lambda c: c.post("/api/v1/tts", json={"text": "hi", "format": "audio/ogg"}), 400, "validation_error"),
        (lambda c: c.post("/api/v1/tts", json={"text": "hi", "voiceId": "../etc"}), 400, "validation_error"),
        (lambda c: c.post("/api/v1/tts", json={"text": "hi", "sessionId": "bad id!"}), 400, "validation_error"),
        (lambda c: c.get("/api/v1/tts/audio/nope"), 404, "not_found"),
        (
            lambda c: c.post("/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": 10}),
            501,
            "storage_unconfigured",
        ),
        (
            lambda c: c.post("/api/v1/storage/audio/presign", json={"contentType": "image/png", "sizeBytes": 10}),
            415,
            "unsupported_media_type",
        ),
        (
            lambda c: c.post("/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": 10**9}),
            413,
            "payload_too_large",
        ),
        (
            lambda c: c.post("/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": "lots"}),
            400,
            "validation_error",
        ),
        (lambda c: c.get("/api/v1/storage/audio/presign?objectKey=../x"), 400, "validation_error"),
    ],
)
def test_bad_requests_get_typed_errors_and_queue_nothing(offline_app, send, status, kind):
    client = offline_app.test_client()
    resp = send(client)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["type"] == kind
    assert _jobs(offline_app) == 0


def test_local_stt_refuses_non_wav_before_storing_anything(offline_app):
    rt = offline_app.extensions["coachup"]
    rt.settings = rt.settings.replace(stt_provider="local")
    resp = _stt_upload(offline_app.test_client(), b"\x1a\x45\xdf\xa3", "audio/webm")
    assert resp.status_code == 415 and "wav" in resp.get_json()["error"]["message"]
    assert _jobs(offline_app) == 0 and not (rt.settings.data_dir / "audio").exists()


def test_an_unknown_local_voice_is_400(offline_app):
    rt = offline_app.extensions["coachup"]
    rt.settings = rt.settings.replace(tts_provider="local")
    resp = offline_app.test_client().post("/api/v1/tts", json={"text": "hi", "voiceId": "slt"})
    assert resp.status_code == 400 and "awb" in resp.get_json()["error"]["message"] and _jobs(offline_app) == 0


def test_a_malformed_wait_flag_is_400(offline_app):
    resp = offline_app.test_client().post("/api/v1/tts?wait=maybe", json={"text": "hi"})
    assert resp.status_code == 400 and _jobs(offline_app) == 0


@pytest.mark.parametrize(
    "path,body", [("/api/v1/stt", {"audioUrl": "https://example.com/a.wav"}), ("/api/v1/tts", {"text": "hello"})]
)
def test_an_unconfigured_provider_is_501_before_enqueueing(offline_app, path, body):
    # Given STT/TTS_PROVIDER=openai and no OPENAI_API_KEY
    rt = offline_app.extensions["coachup"]
    rt.settings = rt.settings.replace(stt_provider="openai", tts_provider="openai")
    resp = offline_app.test_client().post(path, json=body)
    assert resp.status_code == 501
    assert resp.get_json()["error"] == {"type": "provider_unconfigured", "message": "OPENAI_API_KEY missing"}
    assert _jobs(offline_app) == 0


def test_a_requested_provider_is_ignored_unless_overrides_are_allowed(offline_app):
    resp = offline_app.test_client().post("/api/v1/tts", json={"text": "hello", "provider": "openai"})
    assert resp.status_code == 202  # mock (override off), queued; SPEECH_WAIT_MS=0 answers at once
    body = resp.get_json()
    assert body["status"] == "queued" and body["statusUrl"] == f"/api/v1/jobs/{body['jobId']}"
    job = offline_app.extensions["coachup"].store.job_record(body["jobId"])
    assert job.kind == "tts" and job.params["provider"] == "mock"


def test_task_messages_carry_the_job_id_only(offline_app):
    # When a multipart STT request is queued
    resp = _stt_upload(offline_app.test_client(), tone_wav(50), sessionId="sess-secret-1", wait="false")
    assert resp.status_code == 202
    # Then the broker message (published by the outbox relay right after the answer) holds the job id and
    # hashed headers, never the audio or the raw session id
    wait_published(offline_app.extensions["coachup"].store)
    messages = waiting_messages(offline_app.extensions["coachup"].celery)
    assert len(messages) == 1
    assert resp.get_json()["jobId"] in messages[0] and "sess-secret-1" not in messages[0]
    assert "RIFF" not in messages[0]


def test_presign_is_ready_for_a_credential_check(offline_app):
    # Given a verifier registered the way the auth issue will (refusing everything)
    offline_app.extensions[AUTH_EXTENSION] = lambda request: False
    resp = offline_app.test_client().post(
        "/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": 10}
    )
    assert resp.status_code == 401 and resp.get_json()["error"]["type"] == "unauthenticated"


def test_skills_catalogue_by_list_id_and_category(offline_app):
    client = offline_app.test_client()
    skills = client.get("/api/v1/skills").get_json()["skills"]
    ids = {s["id"] for s in skills}
    assert {"clarity_eloquence", "conciseness", "fluency_filler", "pacing"} <= ids
    one = client.get("/api/v1/skills?id=pacing").get_json()["skill"]
    assert one["category"] == "delivery" and one["criteria"]
    delivery = client.get("/api/v1/skills?category=delivery").get_json()["skills"]
    assert delivery and all(s["category"] == "delivery" for s in delivery)
    assert client.get("/api/v1/skills?id=nope").status_code == 404
    assert client.get("/api/v1/skills?category=Bad Cat").status_code == 400
    assert client.get("/api/v1/skills?id=pacing&category=delivery").status_code == 400


def test_transcripts_paginate_without_gaps_or_repeats(offline_app):
    # Given 23 turns in three groups of one session (10, 10, 3), plus another session's turns
    client = offline_app.test_client()
    sent = []
    for i in range(23):
        group = f"grp_{i // 10}"
        body = {
            "sessionId": "sess-p",
            "messageId": f"m{i:02d}",
            "role": "user",
            "content": f"turn {i}",
            "groupId": group,
        }
        assert client.post("/messages/ingest", json=body).status_code == 200
        sent.append(f"m{i:02d}")
    client.post("/messages/ingest", json={"sessionId": "other", "messageId": "x", "role": "user", "content": "x"})
    # When the whole session is read 5 at a time
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/transcripts?sessionId=sess-p&limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).get_json()
        seen += [t["messageId"] for t in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    # Then every turn comes once, oldest first, newest last
    assert seen == sent and pages == 5
    group_1 = client.get("/api/v1/transcripts?sessionId=sess-p&groupId=grp_1&limit=100").get_json()
    assert [t["messageId"] for t in group_1["items"]] == sent[10:20] and group_1["nextCursor"] is None
    assert client.get("/api/v1/transcripts?sessionId=sess-p").get_json()["items"][0]["content"] == "turn 0"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?sessionId=s&limit=0",
        "?sessionId=s&limit=101",
        "?sessionId=s&limit=x",
        "?sessionId=s&cursor=garbage!",
        "?sessionId=bad id",
    ],
)
def test_transcripts_validate_their_query(offline_app, query):
    resp = offline_app.test_client().get("/api/v1/transcripts" + query)
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "validation_error"


def test_request_logs_hold_whitelisted_fields_only(offline_app, caplog):
    client = offline_app.test_client()
    with caplog.at_level("INFO", logger="coachup.api"):
        client.get("/api/v1/transcripts?sessionId=sess-raw-77&groupId=grp-raw-88&limit=5")
        client.post("/api/v1/tts", json={"text": "a very private sentence", "sessionId": "sess-raw-77"})
        client.get("/api/v1/skills?category=delivery")
    records = [r for r in caplog.records if getattr(r, "event", None) == "http_request"]
    text = json.dumps([r.__dict__ for r in records], default=str)
    assert "sess-raw-77" not in text and "grp-raw-88" not in text and "private sentence" not in text
    transcripts, tts, skills = records
    assert transcripts.params == {
        "sessionIdHash": transcripts.params["sessionIdHash"],
        "limit": 5,
        "groupId": transcripts.params["groupId"],
        "cursorPresent": False,
    }
    assert transcripts.params["sessionIdHash"].startswith("s:") and transcripts.items == 0
    assert (tts.provider, tts.format, tts.uploaded, tts.sessionIdHash[:2]) == ("mock", "audio/wav", False, "s:")
    assert skills.params == {"category": "delivery"} and skills.items >= 1
