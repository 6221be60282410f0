"""Audio storage: date-laid keys, the data-dir default, and S3 (presign, put, head, get) on a moto server."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from coachup.errors import NotFound
from coachup.settings import load_settings
from coachup.speech.storage import (
    LocalAudioStorage,
    ObjectTooLarge,
    S3AudioStorage,
    build_storage,
    new_object_key,
    valid_object_key,
)


def test_keys_are_laid_out_by_date():
    key = new_object_key("audio/webm", now=datetime(2026, 11, 22, 23, 59, tzinfo=UTC))
    assert re.fullmatch(r"audio/2026-11-22/[0-9a-f]{32}\.webm", key) and valid_object_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "audio/2026-11-22/../../etc/passwd",
        "/etc/passwd",
        "audio/x.wav",
        None,
        7,
        "audio/2026-11-22/" + "a" * 32 + ".exe",
    ],
)
def test_foreign_keys_are_refused(key):
    assert not valid_object_key(key)


def test_without_a_bucket_audio_stays_in_the_data_dir(tmp_path):
    storage = build_storage(load_settings({"COACHUP_DATA_DIR": str(tmp_path)}))
    assert isinstance(storage, LocalAudioStorage)
    key = new_object_key("audio/wav")
    storage.put(key, b"RIFFdata", "audio/wav")
    assert (tmp_path / key).read_bytes() == b"RIFFdata"
    assert storage.get(key, 100) == (b"RIFFdata", "audio/wav")
    with pytest.raises(ObjectTooLarge):
        storage.get(key, 3)
    with pytest.raises(NotFound):
        storage.head(new_object_key("audio/wav"))


def test_s3_presigned_put_then_get_round_trips(s3_server, tmp_path):
    # Given the bucket on a moto server
    settings = load_settings({"COACHUP_DATA_DIR": str(tmp_path), **s3_server.env})
    storage = build_storage(settings)
    assert isinstance(storage, S3AudioStorage)
    # When a client uploads through a presigned PUT URL
    key = new_object_key("audio/webm")
    grant = storage.presign_put(key, "audio/webm")
    assert grant["method"] == "PUT" and grant["objectKey"] == key and grant["expiresAt"].endswith("Z")
    put = requests.put(grant["url"], data=b"\x1a\x45\xdf\xa3webm-bytes", headers=grant["headers"], timeout=10)
    assert put.status_code == 200, put.text
    # Then the server sees it, and a presigned GET URL serves it back
    assert storage.head(key).size == len(b"\x1a\x45\xdf\xa3webm-bytes")
    assert storage.get(key, 1000) == (b"\x1a\x45\xdf\xa3webm-bytes", "audio/webm")
    fetched = requests.get(storage.presign_get(key)["url"], timeout=10)
    assert fetched.content == b"\x1a\x45\xdf\xa3webm-bytes"
    with pytest.raises(ObjectTooLarge):
        storage.get(key, 4)
    with pytest.raises(NotFound):
        storage.get(new_object_key("audio/wav"), 1000)
