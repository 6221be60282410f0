"""Audio storage behind one seam: S3 (boto3) when `S3_BUCKET_AUDIO` is set, else the data directory.

Keys are laid out by date, `audio/YYYY-MM-DD/<uuid>.<ext>`, and every key from outside is checked
against that layout (which also keeps a local path inside the audio folder).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeGuard

from coachup.errors import NotFound, PermanentError, ProviderUnconfigured, UpstreamUnavailable
from coachup.settings import Settings

from .types import EXTENSIONS

__all__ = [
    "AudioStorage",
    "LocalAudioStorage",
    "S3AudioStorage",
    "StoredObject",
    "StorageUnconfigured",
    "ObjectTooLarge",
    "new_object_key",
    "valid_object_key",
    "build_storage",
    "PRESIGN_EXPIRES_S",
]

PRESIGN_EXPIRES_S = 900  # 15 minutes
_KEY = re.compile(r"^audio/\d{4}-\d{2}-\d{2}/[0-9a-f]{32}\.(webm|wav|mp3|mp4|m4a)$")
_CONTENT_TYPE_BY_EXT = {
    "webm": "audio/webm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mp4": "audio/mp4",
    "m4a": "audio/x-m4a",
}


class StorageUnconfigured(PermanentError):
    """No bucket is configured for what needs one (presign, fetch by key from S3)."""

    type = "storage_unconfigured"


class ObjectTooLarge(PermanentError):
    """The stored object is larger than the limit."""

    type = "payload_too_large"


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str


def new_object_key(content_type: str, *, now: datetime | None = None) -> str:
    """`audio/YYYY-MM-DD/<uuid>.<ext>` for a new object of `content_type` (UTC date)."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    return f"audio/{day}/{uuid.uuid4().hex}.{EXTENSIONS[content_type]}"


def valid_object_key(key: object) -> TypeGuard[str]:
    return isinstance(key, str) and bool(_KEY.match(key))


def _ext_content_type(key: str) -> str:
    return _CONTENT_TYPE_BY_EXT[key.rsplit(".", 1)[1]]


class AudioStorage(Protocol):
    """Where audio lives."""

    provider: str

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`."""

    def head(self, key: str) -> StoredObject:
        """Size and type of `key`; `NotFound` when absent."""

    def get(self, key: str, max_bytes: int) -> tuple[bytes, str]:
        """(bytes, content type) of `key`; `NotFound`, or `ObjectTooLarge` above `max_bytes`."""


class LocalAudioStorage:
    """Files under `COACHUP_DATA_DIR/audio/...` (the embedded default; API and worker share the disk)."""

    provider = "local"

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).resolve()

    def _path(self, key: str) -> Path:
        if not valid_object_key(key):
            raise PermanentError("objectKey does not match audio/YYYY-MM-DD/<id>.<ext>", type="validation_error")
        return self.root / key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)

    def head(self, key: str) -> StoredObject:
        path = self._path(key)
        if not path.is_file():
            raise NotFound("no audio object with this key", type="object_not_found")
        return StoredObject(path.stat().st_size, _ext_content_type(key))

    def get(self, key: str, max_bytes: int) -> tuple[bytes, str]:
        info = self.head(key)
        if info.size > max_bytes:
            raise ObjectTooLarge(f"audio object is larger than {max_bytes} bytes")
        return self._path(key).read_bytes(), info.content_type


class S3AudioStorage:
    """One bucket through boto3 (credentials from the usual AWS chain); presigns PUT and GET URLs."""

    provider = "s3"

    def __init__(self, settings: Settings, client=None) -> None:
        self.bucket = settings.s3_bucket_audio
        self.region = settings.s3_region
        self._client = client or _s3_client(settings)

    def _call(self, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFound("no audio object with this key", type="object_not_found") from None
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or code in ("SlowDown", "RequestTimeout"):
                raise UpstreamUnavailable(f"object storage unavailable ({code})") from None
            raise PermanentError(f"object storage refused the call ({code})", type="storage_error") from None
        except BotoCoreError as exc:
            raise UpstreamUnavailable(f"object storage unreachable ({type(exc).__name__})") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call(self._client.put_object, Key=key, Body=data, ContentType=content_type)

    def head(self, key: str) -> StoredObject:
        meta = self._call(self._client.head_object, Key=key)
        ctype = (meta.get("ContentType") or _ext_content_type(key)).split(";")[0].strip().lower()
        return StoredObject(int(meta.get("ContentLength", 0)), ctype)

    def get(self, key: str, max_bytes: int) -> tuple[bytes, str]:
        obj = self._call(self._client.get_object, Key=key)
        if int(obj.get("ContentLength", 0)) > max_bytes:
            obj["Body"].close()
            raise ObjectTooLarge(f"audio object is larger than {max_bytes} bytes")
        data = obj["Body"].read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ObjectTooLarge(f"audio object is larger than {max_bytes} bytes")
        return data, (obj.get("ContentType") or _ext_content_type(key)).split(";")[0].strip().lower()

    def presign_put(self, key: str, content_type: str, expires_s: int = PRESIGN_EXPIRES_S) -> dict:
        url = self._client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type}, ExpiresIn=expires_s
        )
        return {
            "url": url,
            "method": "PUT",
            "headers": {"Content-Type": content_type},
            "expiresAt": _expires_at(expires_s),
            "objectKey": key,
        }

    def presign_get(self, key: str, expires_s: int = PRESIGN_EXPIRES_S) -> dict:
        url = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )
        return {"url": url, "method": "GET", "headers": {}, "expiresAt": _expires_at(expires_s), "objectKey": key}


def _expires_at(expires_s: int) -> str:
    at = datetime.now(UTC) + timedelta(seconds=expires_s)
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _s3_client(settings: Settings):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # the `s3` extra is not installed
        raise ProviderUnconfigured("S3_BUCKET_AUDIO needs boto3: pip install 'coachup[s3]'") from None

    config = Config(
        region_name=settings.s3_region,
        signature_version="s3v4",
        s3={"addressing_style": "path" if settings.s3_force_path_style else "auto"},
        connect_timeout=3,
        read_timeout=10,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)


def build_storage(settings: Settings) -> AudioStorage:
    """S3 when a bucket is configured, else the data directory."""
    if settings.s3_bucket_audio:
        return S3AudioStorage(settings)
    return LocalAudioStorage(settings.data_dir)
