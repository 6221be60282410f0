"""Fixtures of the speech tests: one moto S3 server, one fake OpenAI speech server, one audio host and one
real speech stack (Redis broker + PostgreSQL store + a worker subprocess) per session.

The speech stack is separate from the shared `stack` matrix so its provider settings (override allowed,
fake OpenAI, S3 on moto, loopback audio host allowlisted) do not leak into the other suites.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from coachup.settings import Settings, load_settings
from tests.support.audio_host import AudioHost
from tests.support.fake_speech import FakeOpenAISpeech
from tests.support.s3 import TEST_AWS_ENV, S3Server
from tests.support.services import EmbeddedBrokerServer, PostgresDatabase, redis_db, redis_url
from tests.support.worker import WorkerProcess

TEST_HASH_SECRET = "test-hash-secret-7f3a"
FAKE_OPENAI_KEY = "sk-test-speech-0000"
# the third of the suite's Redis databases is the speech stack's (the shared `stack` uses the first two)


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    saved = {k: os.environ.get(k) for k in TEST_AWS_ENV}
    os.environ.update(TEST_AWS_ENV)  # boto3 in this process (the API under test) finds the test keys
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def fake_openai():
    server = FakeOpenAISpeech()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def audio_host():
    host = AudioHost()
    yield host
    host.stop()


@dataclass
class SpeechStack:
    env: dict[str, str]
    settings: Settings
    data_dir: Path
    worker: WorkerProcess

    def app(self, **changes):
        from web import create_app

        settings = self.settings.replace(**changes) if changes else self.settings
        return create_app(settings, configure_logs=False)


def speech_env(data_dir: Path, s3: S3Server, fake: FakeOpenAISpeech, host: AudioHost) -> dict[str, str]:
    return {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(data_dir),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "ASSESSMENTS_BACKOFF_BASE_MS": "50",
        "ALLOW_PROVIDER_OVERRIDE": "1",
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "SPEECH_PROVIDER_TIMEOUT_MS": "1000",
        "AUDIO_URL_ALLOW_HOSTS": f"127.0.0.1:{host.port}",
        "SPEECH_WAIT_MS": "20000",
        **s3.env,
    }


@pytest.fixture(scope="session")
def speech_stack(tmp_path_factory, s3_server, fake_openai, audio_host):
    """Redis + PostgreSQL + one worker on every queue, configured for all three speech providers."""
    data_dir = tmp_path_factory.mktemp("speech")
    pg = PostgresDatabase()
    env = {
        **speech_env(data_dir, s3_server, fake_openai, audio_host),
        "COACHUP_BROKER_URL": redis_url(redis_db("speech")),
        "COACHUP_DATABASE_URL": pg.url,
    }
    settings = load_settings(env)
    from coachup.store import create_store

    create_store(settings.database_url)
    worker = WorkerProcess(env, data_dir / "worker.log", name="t-speech").wait_ready()
    yield SpeechStack(env, settings, data_dir, worker)
    worker.stop()
    pg.drop()


@pytest.fixture
def offline_app(tmp_path):
    """An in-process API on the embedded broker (no worker): for validation paths that never enqueue."""
    from web import create_app

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "STT_MAX_AUDIO_BYTES": "4096",
            "SPEECH_WAIT_MS": "0",
        }
    )
    server = EmbeddedBrokerServer(settings)  # the embedded broker's own server, as `make run` starts it
    yield create_app(settings, configure_logs=False)
    server.close()
