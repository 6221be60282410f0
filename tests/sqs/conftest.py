"""SQS fixtures: settings on the session's moto server, each with queues of its own (a fresh prefix)."""

from __future__ import annotations

import pytest

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.moto import sqs_stack_env


@pytest.fixture
def sqs_env(moto_sqs, tmp_path) -> dict[str, str]:
    return {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        **sqs_stack_env(moto_sqs, "unit"),
    }


@pytest.fixture
def sqs_settings(sqs_env):
    return load_settings(sqs_env)
