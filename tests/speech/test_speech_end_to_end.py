"""STT and TTS end to end through the API and a real worker (Redis broker, PostgreSQL store), for the mock,
local and openai (local fake server) providers, from every audio source, and a full voice round trip."""

from __future__ import annotations

import io
import json
import uuid

import pytest
import requests

from coachup.speech.audio import tone_wav, wav_duration_ms
from coachup.speech.local import flite_path
from coachup.speech.mock import MS_PER_CHAR
from tests.speech.test_providers import word_error_rate
from tests.support.fake_speech import TRANSCRIPT
from tests.support.services import require
from tests.support.wait import wait_until

STT_KEYS = {
    "provider",
    "text",
    "confidence",
    "language",
    "model",
    "sessionId",
    "groupId",
    "objectKey",
    "sttCostCents",
    "sttDurationMs",
}
TTS_KEYS = {"provider", "voiceId", "format", "audioUrl", "durationMs", "ttsCostCents", "ttsCharacters", "uploaded"}


@pytest.fixture(scope="module")
def client(speech_stack):
    return speech_stack.app().test_client()


def _upload(client, audio: bytes, **fields):
    data = {"audio": (io.BytesIO(audio), "clip.wav", "audio/wav"), **fields}
    return client.post("/api/v1/stt", data=data, content_type="multipart/form-data")


def _ok(resp, status=200) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def test_mock_tts_then_its_audio_is_served(client):
    body = _ok(client.post("/api/v1/tts", json={"text": "Hello there, coach.", "sessionId": "s-tts-1"}))
    assert set(body) >= TTS_KEYS
    assert (body["provider"], body["format"], body["uploaded"], body["ttsCharacters"]) == (
        "mock",
        "audio/wav",
        False,
        19,
    )
    assert body["durationMs"] == 19 * MS_PER_CHAR and body["ttsCostCents"] == 0
    audio = client.get(body["audioUrl"])
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert wav_duration_ms(audio.data) == body["durationMs"]


def test_mock_stt_from_a_multipart_upload(client):
    body = _ok(_upload(client, tone_wav(400), sessionId="s-stt-1", groupId="grp_x", languageHint="en"))
    assert set(body) >= STT_KEYS
    assert body["provider"] == "mock" and body["text"].startswith("this is a mock transcript")
    assert (body["sessionId"], body["groupId"], body["sttDurationMs"]) == ("s-stt-1", "grp_x", 400)
    assert body["objectKey"].startswith("audio/")


def test_stt_from_an_object_key_uploaded_through_a_presigned_url(client, s3_server):
    grant = _ok(client.post("/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": 12832}))
    clip = tone_wav(400)
    assert requests.put(grant["url"], data=clip, headers=grant["headers"], timeout=10).status_code == 200
    body = _ok(client.post("/api/v1/stt", json={"objectKey": grant["objectKey"], "sessionId": "s-key"}))
    assert body["objectKey"] == grant["objectKey"] and body["sttDurationMs"] == 400
    # a GET URL for the same key, and a 404 for an unknown one
    got = _ok(client.get(f"/api/v1/storage/audio/presign?objectKey={grant['objectKey']}"))
    assert requests.get(got["url"], timeout=10).content == clip
    missing = grant["objectKey"].rsplit("/", 1)[0] + "/" + "0" * 32 + ".wav"
    assert client.post("/api/v1/stt", json={"objectKey": missing}).status_code == 404


def test_stt_object_key_above_the_limit_is_413(speech_stack, s3_server):
    client = speech_stack.app(stt_max_audio_bytes=1000).test_client()
    # the key is handed out by the API (only the caller's keys are accepted), for a size the client lies about
    grant = _ok(client.post("/api/v1/storage/audio/presign", json={"contentType": "audio/wav", "sizeBytes": 1000}))
    key = grant["objectKey"]
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=tone_wav(400), ContentType="audio/wav")
    resp = client.post("/api/v1/stt", json={"objectKey": key})
    assert resp.status_code == 413 and resp.get_json()["error"]["type"] == "payload_too_large"


def test_stt_from_an_allowlisted_audio_url(client, audio_host):
    audio_host.clips["e2e.wav"] = tone_wav(300)
    body = _ok(client.post("/api/v1/stt", json={"audioUrl": audio_host.url("e2e.wav")}))
    assert body["sttDurationMs"] == 300 and body["objectKey"] is None


def test_a_redirect_to_a_private_address_fails_in_the_worker(client, audio_host):
    # the API checks the first URL (allowlisted); the worker checks the redirect and refuses it
    url = audio_host.url("redirect?to=http://10.0.0.7/x.wav")
    resp = client.post("/api/v1/stt", json={"audioUrl": url})
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "audio_url_rejected"


def test_wait_false_answers_202_and_the_job_finishes(client):
    accepted = _ok(client.post("/api/v1/tts?wait=false", json={"text": "Later."}), 202)
    job = wait_until(
        lambda: (j := client.get(accepted["statusUrl"]).get_json())["status"] == "done" and j,
        timeout=30,
        what="tts job done",
    )
    assert job["kind"] == "tts" and job["result"]["ttsCharacters"] == 6


def test_tts_uploaded_to_storage_answers_a_presigned_url(speech_stack):
    client = speech_stack.app(tts_upload_to_storage=True).test_client()
    body = _ok(client.post("/api/v1/tts", json={"text": "Stored in the bucket."}))
    assert body["uploaded"] is True and body["audioUrl"].startswith("http://127.0.0.1:")
    assert requests.get(body["audioUrl"], timeout=10).content[:4] == b"RIFF"


def test_openai_stt_retries_429_and_5xx_then_answers(client, fake_openai):
    fake_openai.reset()
    fake_openai.script.extend([429, 503])
    body = _ok(_upload(client, tone_wav(200), provider="openai"))
    assert body["provider"] == "openai" and body["text"] == TRANSCRIPT and body["model"] == "whisper-1"
    assert body["sttCostCents"] == 0.025  # 2.5 s at 0.6 cents a minute
    calls = [r for r in fake_openai.requests if r["path"] == "/v1/audio/transcriptions"]
    assert len(calls) == 3 and all(c["headers"].get("x-request-id") for c in calls)


def test_openai_tts_retries_a_timeout_then_answers(client, fake_openai):
    fake_openai.reset()
    fake_openai.slow_s = 1.5  # above SPEECH_PROVIDER_TIMEOUT_MS=1000 of the worker
    fake_openai.script.append("slow")
    body = _ok(client.post("/api/v1/tts", json={"text": "hello", "provider": "openai", "format": "wav"}))
    assert body["provider"] == "openai" and body["format"] == "audio/wav" and body["ttsCostCents"] == 0.0075
    assert len(fake_openai.requests) == 2


def test_openai_401_fails_once_without_retrying(client, fake_openai):
    fake_openai.reset()
    fake_openai.script.append(401)
    resp = client.post("/api/v1/tts", json={"text": "hello", "provider": "openai"})
    assert resp.status_code == 502 and resp.get_json()["error"]["type"] == "upstream_rejected"
    assert len(fake_openai.requests) == 1


def test_voice_round_trip_tts_stt_ingest_assess(client):
    # Given the offline voice path
    require(flite_path() is not None, "flite (apt-get install flite)")
    sentence = "We hired three engineers for the platform team and next quarter we will hire two more people."
    session_id = "sess-voice-" + uuid.uuid4().hex[:6]
    # When the sentence is spoken by the local TTS and its audio transcribed by the local STT
    spoken = _ok(client.post("/api/v1/tts", json={"text": sentence, "provider": "local", "sessionId": session_id}))
    assert spoken["provider"] == "local" and spoken["voiceId"] == "awb"
    audio = client.get(spoken["audioUrl"]).data
    heard = _ok(_upload(client, audio, provider="local", sessionId=session_id, languageHint="en"))
    assert heard["provider"] == "local" and word_error_rate(sentence, heard["text"]) <= 0.25, heard["text"]
    # Then the transcript ingested as a turn ends a group whose assessment completes
    ingest = _ok(
        client.post(
            "/messages/ingest",
            json={
                "sessionId": session_id,
                "messageId": "voice-1",
                "role": "user",
                "content": heard["text"],
                "end": True,
            },
        )
    )
    assert ingest["enqueued"] is True

    def assessed():
        body = client.get(f"/assessments/{session_id}").get_json()
        assert body["status"] != "failed", body
        return body if body["status"] == "done" else None

    summary = wait_until(assessed, timeout=60, what="assessment of the spoken turn")["summary"]
    assert summary["meta"]["messageCount"] == 1 and set(summary["scores"]) >= {"clarity", "fluency"}
    page = _ok(client.get(f"/api/v1/transcripts?sessionId={session_id}"))
    assert [t["content"] for t in page["items"]] == [heard["text"]]


def test_worker_logs_speech_outcomes_without_content(speech_stack):
    events = speech_stack.worker.events("speech_provider_call")
    assert {e["provider"] for e in events} >= {"mock", "openai"}
    assert any(e["kind"] == "stt" and e["audioBytesIn"] > 0 for e in events)
    assert any(e["kind"] == "tts" and e["audioBytesOut"] > 0 for e in events)
    assert any(e["storageBytesUploaded"] > 0 for e in events)
    errors = speech_stack.worker.events("speech_provider_error")
    assert {e["error"]["type"] for e in errors} >= {"rate_limited", "upstream_unavailable", "timeout"}
    text = speech_stack.worker.log_text()
    for secret in (
        "s-stt-1",
        "s-key",
        "Hello there, coach",
        "We hired three engineers",
        TRANSCRIPT,
        "sk-test-speech-0000",
    ):
        assert secret not in text, secret
    assert all(line.startswith("{") for line in text.splitlines() if "speech_provider" in line)
    assert json.loads([ln for ln in text.splitlines() if "speech_provider_call" in ln][0])["requestId"]
