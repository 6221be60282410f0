"""The `openai` speech providers over HTTP (`requests`): Whisper-style transcription and speech synthesis.

No retries here: a typed error goes back to the Celery task, whose autoretry owns backoff. Error
messages carry status codes only (a provider body may echo the text).
"""

from __future__ import annotations

import requests

from coachup.errors import (
    CoachupError,
    ProviderUnconfigured,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

from .types import EXTENSIONS, Synthesis, Transcription

__all__ = ["OpenAiStt", "OpenAiTts", "DEFAULT_BASE_URL", "classify_status"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_TTS_FORMATS = {"audio/mpeg": "mp3", "audio/wav": "wav"}
_BYTES_PER_MS = {"audio/wav": 48}  # tts-1 wav is 24 kHz mono 16-bit


def classify_status(status: int) -> CoachupError:
    """401/403/400 permanent; 429 and 5xx retryable."""
    if status == 429:
        return UpstreamRateLimited("speech provider rate-limited the call (HTTP 429)")
    if status >= 500 or status == 408:
        return UpstreamUnavailable(f"speech provider unavailable (HTTP {status})")
    return UpstreamRejected(f"speech provider rejected the call (HTTP {status})")


class _Client:
    def __init__(self, api_key: str, base_url: str, model: str, timeout_s: float, headers: dict | None) -> None:
        if not api_key:
            raise ProviderUnconfigured("OPENAI_API_KEY missing")
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model = model
        self.timeout = (min(timeout_s, 10.0), timeout_s)  # (connect, read) seconds
        self.headers = {"authorization": f"Bearer {api_key}", **(headers or {})}

    def post(self, path: str, **kwargs) -> requests.Response:
        try:
            resp = requests.post(
                self.base_url + path, headers=self.headers, timeout=self.timeout, allow_redirects=False, **kwargs
            )
        except requests.Timeout:
            raise UpstreamTimeout("speech provider timed out") from None
        except requests.RequestException as exc:
            raise UpstreamUnavailable(f"speech provider unreachable: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise classify_status(resp.status_code)
        return resp


class OpenAiStt(_Client):
    """POST {base}/audio/transcriptions (multipart), `verbose_json` for language and duration."""

    name = "openai"

    def transcribe(self, audio: bytes, content_type: str, language_hint: str | None) -> Transcription:
        data = {"model": self.model, "response_format": "verbose_json"}
        if language_hint:
            data["language"] = language_hint
        files = {"file": (f"audio.{EXTENSIONS.get(content_type, 'bin')}", audio, content_type)}
        body = self.post("/audio/transcriptions", data=data, files=files).json()
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise UpstreamUnavailable("speech provider answered without text")
        duration_s = body.get("duration")
        return Transcription(
            text=body["text"].strip(),
            confidence=_confidence(body),
            language=str(body.get("language") or language_hint or "en")[:16],
            model=self.model,
            duration_ms=int(float(duration_s) * 1000) if isinstance(duration_s, (int, float)) else 0,
        )


def _confidence(body: dict) -> float:
    """Whisper gives no confidence; derive one from segments' avg_logprob when present."""
    import math

    segments = body.get("segments") or []
    logprobs: list[float] = [
        float(s["avg_logprob"])
        for s in segments
        if isinstance(s, dict) and isinstance(s.get("avg_logprob"), (int, float))
    ]
    if not logprobs:
        return 0.9
    return round(max(0.0, min(1.0, math.exp(sum(logprobs) / len(logprobs)))), 3)


class OpenAiTts(_Client):
    """POST {base}/audio/speech (JSON) -> audio bytes."""

    name = "openai"
    formats: tuple[str, ...] = ("audio/mpeg", "audio/wav")
    default_voice = "alloy"

    def synthesize(self, text: str, voice_id: str | None, content_type: str) -> Synthesis:
        voice = voice_id or self.default_voice
        payload = {
            "model": self.model,
            "input": text,
            "voice": voice,
            "response_format": _TTS_FORMATS.get(content_type, "mp3"),
        }
        audio = self.post("/audio/speech", json=payload).content
        if not audio:
            raise UpstreamUnavailable("speech provider answered no audio")
        per_ms = _BYTES_PER_MS.get(content_type, 16)  # mp3 at 128 kbit/s: 16 bytes per ms
        return Synthesis(
            audio=audio, content_type=content_type, duration_ms=len(audio) // per_ms, voice_id=voice, model=self.model
        )
