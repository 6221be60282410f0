"""`POST /api/v1/stt`, `POST /api/v1/tts`, `GET /api/v1/tts/audio/{id}`: validate, enqueue, wait (bounded).

The work runs on the `stt` / `tts` queues; the view polls the job row for up to `SPEECH_WAIT_MS` and answers
200 with the result, or 202 with the job id (`wait=false`, or the wait ran out).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, request

from coachup.errors import CoachupError
from coachup.speech.fetch import check_url
from coachup.speech.providers import stt_accepts, tts_formats, tts_voices
from coachup.speech.service import fetch_policy
from coachup.speech.storage import LocalAudioStorage, S3AudioStorage, build_storage, new_object_key, valid_object_key
from coachup.speech.types import normalize_content_type
from workers.enqueue import enqueue_speech

from ..errors import ApiError
from ..idempotency import idempotent
from ..runtime import runtime
from ..session_access import (
    caller_owner,
    grant_object,
    require_job_access,
    require_object_access,
    require_session_access,
)
from ..speech_support import chosen_provider, job_response, to_api_error
from ..validation import ID_PATTERN, json_body, opt_bool, opt_id_field, opt_str

bp = Blueprint("speech", __name__)

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
_VOICE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MULTIPART_SLACK = 64 * 1024  # form fields and part headers around the audio
_FORMAT_ALIASES = {"wav": "audio/wav", "mp3": "audio/mpeg", "audio/mp3": "audio/mpeg"}


def _wait_requested(data: dict) -> bool:
    raw = request.args.get("wait", data.get("wait", True))
    return opt_bool({"wait": raw if raw not in (None, "") else True}, "wait")


def _ids(data: dict) -> tuple[str | None, str | None]:
    rt = runtime()
    session_id, group_id = opt_id_field(data, "sessionId"), opt_id_field(data, "groupId")
    g.log_fields.update(
        {
            k: v
            for k, v in (("sessionIdHash", rt.hasher.session(session_id)), ("groupId", rt.hasher.group(group_id)))
            if v
        }
    )
    require_session_access(session_id, write=True)  # a job of the session: the caller's session only
    return session_id, group_id


def _enqueue(kind: str, params: dict, session_id, group_id, wait: bool):
    rt = runtime()
    job_id = enqueue_speech(
        rt.celery,
        rt.store,
        rt.hasher,
        kind,
        params=params,
        ctx=g.ctx,
        session_id=session_id,
        group_id=group_id,
        owner=caller_owner(),
    )  # the row is committed; the outbox relay publishes it (never a 503 for a broker outage)
    body, status = job_response(rt.store, job_id, wait=wait, timeout_s=rt.settings.speech_wait_ms / 1000)
    return body, status, job_id


@bp.post("/api/v1/stt")
@idempotent
def speech_to_text():
    rt = runtime()
    settings = rt.settings
    request.max_content_length = settings.stt_max_audio_bytes + _MULTIPART_SLACK
    multipart = request.mimetype == "multipart/form-data"
    data = dict(request.form.items()) if multipart else json_body()
    wait = _wait_requested(data)
    session_id, group_id = _ids(data)
    hint = opt_str(data, "languageHint", max_len=12)
    if hint and not _LANGUAGE.match(hint):
        raise ApiError(400, "validation_error", "languageHint must be a language tag such as en or en-US")
    provider = chosen_provider("stt", settings, data.get("provider"))
    g.log_fields["provider"] = provider
    params = {"provider": provider, "languageHint": hint, "sessionId": session_id, "groupId": group_id}
    params.update(_upload(provider) if multipart else _reference(data, provider))
    g.log_fields["source"] = params["source"]
    body, status, _ = _enqueue("stt", params, session_id, group_id, wait)
    if status == 200 and body.get("language"):
        g.log_fields["language"] = body["language"]
    return body, status


def _too_large(size: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"audio is larger than STT_MAX_AUDIO_BYTES ({size} bytes)")


def _check_accepted(ctype: str, provider: str) -> None:
    accepts = stt_accepts(provider)
    if accepts is not None and ctype not in accepts:
        raise ApiError(415, "unsupported_media_type", f"the {provider} provider accepts {', '.join(accepts)}")


def _upload(provider: str) -> dict:
    """Multipart `audio` file: checked, then kept where the worker can read it (S3 or the data dir)."""
    settings = runtime().settings
    part = request.files.get("audio")
    if part is None:
        raise ApiError(400, "validation_error", "multipart STT needs an `audio` file part")
    ctype = normalize_content_type(part.mimetype)
    if ctype is None:
        raise ApiError(415, "unsupported_media_type", "audio must be webm, wav, mpeg, mp4 or x-m4a")
    _check_accepted(ctype, provider)
    audio = part.stream.read(settings.stt_max_audio_bytes + 1)
    if len(audio) > settings.stt_max_audio_bytes:
        raise _too_large(settings.stt_max_audio_bytes)
    if not audio:
        raise ApiError(400, "validation_error", "the audio file is empty")
    g.log_fields["audioBytesIn"] = len(audio)
    key = new_object_key(ctype)
    storage = build_storage(settings)
    try:
        storage.put(key, audio, ctype)
    except CoachupError as exc:
        raise to_api_error(exc) from None
    grant_object(key)
    return {"source": "upload", "objectKey": key, "contentType": ctype, "storage": storage.provider}


def _reference(data: dict, provider: str) -> dict:
    """JSON `audioUrl` (checked for SSRF here, again in the worker) or `objectKey` (must exist in S3)."""
    settings = runtime().settings
    url, key = data.get("audioUrl"), data.get("objectKey")
    if (url is None) == (key is None):
        raise ApiError(400, "validation_error", "send exactly one of audioUrl or objectKey (or multipart audio)")
    if url is not None:
        try:
            check_url(url, fetch_policy(settings))
        except CoachupError as exc:
            raise to_api_error(exc) from None
        return {"source": "audioUrl", "audioUrl": url}
    if not valid_object_key(key):
        raise ApiError(400, "validation_error", "objectKey must look like audio/YYYY-MM-DD/<id>.<ext>")
    if not settings.s3_bucket_audio:
        raise ApiError(501, "storage_unconfigured", "S3_BUCKET_AUDIO is not set")
    require_object_access(key)  # only an object this API handed to the caller
    try:
        info = S3AudioStorage(settings).head(key)
    except CoachupError as exc:
        raise to_api_error(exc) from None
    if info.size > settings.stt_max_audio_bytes:
        raise _too_large(settings.stt_max_audio_bytes)
    ctype = normalize_content_type(info.content_type)
    if ctype is None:
        raise ApiError(415, "unsupported_media_type", "the stored object is not an accepted audio type")
    _check_accepted(ctype, provider)
    g.log_fields["audioBytesIn"] = info.size
    return {"source": "objectKey", "objectKey": key, "contentType": ctype, "storage": "s3"}


@bp.post("/api/v1/tts")
@idempotent
def text_to_speech():
    rt = runtime()
    settings = rt.settings
    data = json_body()
    wait = _wait_requested(data)
    text = opt_str(data, "text", max_len=settings.tts_max_chars, required=True)
    session_id, group_id = _ids(data)
    provider = chosen_provider("tts", settings, data.get("provider"))
    voice = opt_str(data, "voiceId", max_len=64)
    if voice is not None and not _VOICE.match(voice):
        raise ApiError(400, "validation_error", "voiceId must be 1-64 letters, digits or _.-")
    voices = tts_voices(provider)
    if voice is not None and voices is not None and voice not in voices:
        raise ApiError(400, "validation_error", f"voiceId must be one of {', '.join(voices)} for {provider}")
    formats = tts_formats(provider)
    fmt = opt_str(data, "format", max_len=32)
    fmt = _FORMAT_ALIASES.get(fmt, fmt) if fmt else formats[0]
    if fmt not in formats:
        raise ApiError(400, "validation_error", f"format must be one of {', '.join(formats)} for {provider}")
    upload = settings.tts_upload_to_storage
    if upload and not settings.s3_bucket_audio:
        raise ApiError(501, "storage_unconfigured", "TTS_UPLOAD_TO_STORAGE=1 needs S3_BUCKET_AUDIO")
    g.log_fields.update(provider=provider, format=fmt, voiceId=voice, uploaded=upload)
    if upload:
        g.log_fields["storage"] = {"bucket": settings.s3_bucket_audio, "region": settings.s3_region}
    params = {
        "provider": provider,
        "text": text,
        "voiceId": voice,
        "format": fmt,
        "upload": upload,
        "sessionId": session_id,
        "groupId": group_id,
    }
    body, status, _ = _enqueue("tts", params, session_id, group_id, wait)
    if status == 200:
        g.log_fields["voiceId"] = body.get("voiceId")
    return body, status


@bp.get("/api/v1/tts/audio/<job_id>")
def tts_audio(job_id: str):
    rt = runtime()
    if not ID_PATTERN.match(job_id):
        raise ApiError(400, "validation_error", "id must be a job id")
    require_job_access(job_id)
    job = rt.store.get_job(job_id)
    if job is None or job["kind"] != "tts":
        raise ApiError(404, "not_found", "unknown TTS job")
    if job["status"] != "done" or not job.get("result"):
        raise ApiError(409, "not_ready", f"the TTS job is {job['status']}")
    result = job["result"]
    storage = S3AudioStorage(rt.settings) if result.get("uploaded") else LocalAudioStorage(rt.settings.data_dir)
    try:
        audio, ctype = storage.get(result["objectKey"], 100 * 1024 * 1024)
    except CoachupError as exc:
        raise to_api_error(exc) from None
    g.log_fields.update(provider=result.get("provider"), format=ctype, audioBytesOut=len(audio))
    return Response(audio, mimetype=ctype, headers={"cache-control": "no-store"})
