"""`POST /api/v1/storage/audio/presign` (a PUT URL, 15 min) and `GET` (a GET URL for `?objectKey=`).

No audio passes through here. Needs `S3_BUCKET_AUDIO` (else 501 `storage_unconfigured`) and a credential
(`web.auth.credential_required`; open until the auth issue registers its verifier).
"""

from __future__ import annotations

from flask import Blueprint, g, request

from coachup.errors import CoachupError
from coachup.speech.storage import PRESIGN_EXPIRES_S, S3AudioStorage, new_object_key, valid_object_key
from coachup.speech.types import normalize_content_type

from ..auth import credential_required
from ..errors import ApiError
from ..runtime import runtime
from ..session_access import grant_object, require_object_access
from ..speech_support import to_api_error
from ..validation import json_body, opt_int

bp = Blueprint("storage", __name__)


def _s3() -> S3AudioStorage:
    settings = runtime().settings
    if not settings.s3_bucket_audio:
        raise ApiError(501, "storage_unconfigured", "S3_BUCKET_AUDIO is not set")
    g.log_fields["storage"] = {
        "provider": "s3",
        "bucket": settings.s3_bucket_audio,
        "region": settings.s3_region,
        "expiresSeconds": PRESIGN_EXPIRES_S,
    }
    return S3AudioStorage(settings)


@bp.post("/api/v1/storage/audio/presign")
@credential_required
def presign_upload():
    settings = runtime().settings
    data = json_body()
    raw_type = data.get("contentType")
    if not isinstance(raw_type, str) or not raw_type:
        raise ApiError(400, "validation_error", "contentType is required")
    ctype = normalize_content_type(raw_type)
    if ctype is None:
        raise ApiError(415, "unsupported_media_type", "contentType must be webm, wav, mpeg, mp4 or x-m4a audio")
    if "sizeBytes" not in data:
        raise ApiError(400, "validation_error", "sizeBytes is required")
    size = opt_int(data, "sizeBytes", default=0, lo=1, hi=2**53)
    g.log_fields["params"] = {"contentType": ctype, "contentLength": size}
    if size > settings.stt_max_audio_bytes:
        raise ApiError(
            413, "payload_too_large", f"sizeBytes exceeds STT_MAX_AUDIO_BYTES ({settings.stt_max_audio_bytes})"
        )
    storage, key = _s3(), new_object_key(ctype)
    grant_object(key)  # only this caller may read it back (GET presign, STT by objectKey)
    return storage.presign_put(key, ctype)


@bp.get("/api/v1/storage/audio/presign")
@credential_required
def presign_download():
    key = request.args.get("objectKey")
    if not valid_object_key(key):
        raise ApiError(400, "validation_error", "objectKey must look like audio/YYYY-MM-DD/<id>.<ext>")
    storage = _s3()
    require_object_access(key)  # someone else's (or a never handed out) object: 404
    try:
        storage.head(key)
    except CoachupError as exc:
        raise to_api_error(exc) from None
    return storage.presign_get(key)
