"""Broker unreachable: STT and TTS answer 503 `broker_unavailable` fast and leave no job row behind."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.speech.audio import tone_wav
from coachup.store.models import Job
from tests.support.services import PrivateRedis


@pytest.fixture
def client_without_broker(tmp_path):
    redis = PrivateRedis()
    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_BROKER_URL": redis.url,
            "COACHUP_HASH_SECRET": "test-hash-secret-7f3a",
        }
    )
    from web import create_app

    client = create_app(settings, configure_logs=False).test_client()
    redis.stop()
    yield client
    redis.close()


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post("/api/v1/tts", json={"text": "hello"}),
        lambda c: c.post(
            "/api/v1/stt",
            data={"audio": (io.BytesIO(tone_wav(100)), "a.wav", "audio/wav")},
            content_type="multipart/form-data",
        ),
    ],
)
def test_speech_with_the_broker_down_is_503_and_leaves_no_job(client_without_broker, send):
    started = time.monotonic()
    resp = send(client_without_broker)
    assert resp.status_code == 503 and resp.get_json()["error"]["type"] == "broker_unavailable"
    assert time.monotonic() - started < 2.5
    store = client_without_broker.application.extensions["coachup"].store
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0
