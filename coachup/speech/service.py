"""The STT and TTS jobs as plain functions over a job's params (the Celery tasks are thin wrappers).

Each call reports one `SpeechOutcome` (provider, latency, bytes in/out/uploaded, error type) through
`on_outcome`, so the worker can turn it into logs and metrics without this module knowing either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from coachup.errors import CoachupError, ValidationFailed
from coachup.settings import Settings

from .fetch import FetchPolicy, fetch_audio
from .pricing import stt_cost_cents, tts_cost_cents
from .providers import build_stt, build_tts
from .storage import AudioStorage, LocalAudioStorage, S3AudioStorage, build_storage, new_object_key

__all__ = ["SpeechOutcome", "run_stt", "run_tts", "fetch_policy", "tts_audio_path"]


@dataclass(frozen=True)
class SpeechOutcome:
    """One provider call. Sizes in bytes, latency in ms; `error` is a type name or None."""

    kind: str  # stt | tts
    provider: str
    latency_ms: int
    source: str | None = None  # stt: upload | objectKey | audioUrl
    bytes_in: int = 0  # stt: audio bytes received or fetched
    bytes_out: int = 0  # tts: synthesized audio bytes
    bytes_uploaded: int = 0  # tts: bytes uploaded to object storage
    error: str | None = None


Report = Callable[[SpeechOutcome], None]


def fetch_policy(settings: Settings) -> FetchPolicy:
    timeout = settings.speech_timeout_ms / 1000
    return FetchPolicy(
        max_bytes=settings.stt_max_audio_bytes,
        allow_hosts=settings.audio_url_allow_hosts,
        connect_timeout_s=min(timeout, 5.0),
        read_timeout_s=timeout,
    )


def _load_audio(params: dict, settings: Settings, storage: AudioStorage, headers: dict) -> tuple[bytes, str]:
    source = params.get("source")
    if source == "audioUrl":
        return fetch_audio(params["audioUrl"], fetch_policy(settings), headers=headers)
    key = params.get("objectKey")
    if not isinstance(key, str):
        raise ValidationFailed("the job names no audio (objectKey or audioUrl)")
    store = LocalAudioStorage(settings.data_dir) if params.get("storage") == "local" else storage
    data, ctype = store.get(key, settings.stt_max_audio_bytes)
    return data, params.get("contentType") or ctype


def run_stt(
    params: dict,
    settings: Settings,
    *,
    storage: AudioStorage | None = None,
    headers: dict | None = None,
    report: Report | None = None,
) -> dict:
    """Transcribe the audio a job refers to; the job's result body (the API's 200 shape)."""
    provider_name = params["provider"]
    storage = storage or build_storage(settings)
    started = time.monotonic()
    outcome = {"kind": "stt", "provider": provider_name, "source": params.get("source")}
    try:
        audio, ctype = _load_audio(params, settings, storage, headers or {})
        outcome["bytes_in"] = len(audio)
        provider = build_stt(provider_name, settings, headers=headers)
        heard = provider.transcribe(audio, ctype, params.get("languageHint"))
    except CoachupError as exc:
        _report(report, outcome, started, error=exc.type)
        raise
    _report(report, outcome, started)
    return {
        "provider": provider_name,
        "text": heard.text,
        "confidence": heard.confidence,
        "language": heard.language,
        "model": heard.model,
        "sessionId": params.get("sessionId"),
        "groupId": params.get("groupId"),
        "objectKey": params.get("objectKey"),
        "sttCostCents": stt_cost_cents(provider_name, heard.duration_ms),
        "sttDurationMs": heard.duration_ms,
    }


def run_tts(
    job_id: str, params: dict, settings: Settings, *, headers: dict | None = None, report: Report | None = None
) -> dict:
    """Synthesize a job's text, keep the audio (data dir, or S3 when uploading), return the result body."""
    provider_name = params["provider"]
    text = params.get("text") or ""
    started = time.monotonic()
    outcome = {"kind": "tts", "provider": provider_name}
    try:
        provider = build_tts(provider_name, settings, headers=headers)
        made = provider.synthesize(text, params.get("voiceId"), params.get("format") or provider.formats[0])
        outcome["bytes_out"] = len(made.audio)
        key = new_object_key(made.content_type)
        uploaded = bool(params.get("upload"))
        if uploaded:
            s3 = S3AudioStorage(settings)
            s3.put(key, made.audio, made.content_type)
            outcome["bytes_uploaded"] = len(made.audio)
            audio_url = s3.presign_get(key)["url"]
        else:
            LocalAudioStorage(settings.data_dir).put(key, made.audio, made.content_type)
            audio_url = tts_audio_path(job_id)
    except CoachupError as exc:
        _report(report, outcome, started, error=exc.type)
        raise
    _report(report, outcome, started)
    return {
        "provider": provider_name,
        "voiceId": made.voice_id,
        "format": made.content_type,
        "audioUrl": audio_url,
        "durationMs": made.duration_ms,
        "ttsCostCents": tts_cost_cents(provider_name, len(text)),
        "ttsCharacters": len(text),
        "uploaded": uploaded,
        "objectKey": key,
        "model": made.model,
        "sessionId": params.get("sessionId"),
        "groupId": params.get("groupId"),
    }


def tts_audio_path(job_id: str) -> str:
    return f"/api/v1/tts/audio/{job_id}"


def _report(report: Report | None, outcome: dict, started: float, *, error: str | None = None) -> None:
    if report is None:
        return
    try:
        report(SpeechOutcome(latency_ms=int((time.monotonic() - started) * 1000), error=error, **outcome))
    except Exception:  # observers never break work
        pass
