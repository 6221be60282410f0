"""Which speech provider serves a call, and building it.

Precedence (reference runbook): the request's `provider` (only when `ALLOW_PROVIDER_OVERRIDE=1`) →
`STT_PROVIDER` / `TTS_PROVIDER` → `SPEECH_PROFILE` → `mock`. The settings already fold the last three.
A provider chosen but not configured raises `ProviderUnconfigured` (the API answers 501 before enqueueing).
"""

from __future__ import annotations

from coachup.errors import ProviderUnconfigured, ValidationFailed
from coachup.settings import SPEECH_PROVIDERS, Settings

from .types import SttProvider, TtsProvider

__all__ = ["resolve_provider", "check_configured", "build_stt", "build_tts"]


def resolve_provider(kind: str, settings: Settings, requested: str | None = None) -> str:
    """The provider name for `kind` (`stt` | `tts`); a request's choice counts only when overrides are on."""
    if requested:
        requested = requested.strip().lower()
        if requested not in SPEECH_PROVIDERS:
            raise ValidationFailed(f"provider must be one of {', '.join(SPEECH_PROVIDERS)}")
        if settings.allow_provider_override:
            return requested
    return settings.stt_provider if kind == "stt" else settings.tts_provider


def check_configured(name: str, settings: Settings) -> None:
    """Raise `ProviderUnconfigured` when `name` lacks what it needs (checked before anything is queued)."""
    if name == "openai" and not settings.openai_api_key:
        raise ProviderUnconfigured("OPENAI_API_KEY missing")
    if name == "local":
        from .local import flite_path

        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            raise ProviderUnconfigured("pocketsphinx missing: pip install 'coachup[local-speech]'") from None
        if flite_path() is None:
            raise ProviderUnconfigured("flite missing: apt-get install flite")


def build_stt(name: str, settings: Settings, *, headers: dict | None = None) -> SttProvider:
    check_configured(name, settings)
    if name == "local":
        from .local import LocalStt

        return LocalStt()
    if name == "openai":
        from .openai_http import OpenAiStt

        return OpenAiStt(
            settings.openai_api_key,
            settings.openai_base_url,
            settings.openai_stt_model,
            settings.speech_timeout_ms / 1000,
            headers,
        )
    from .mock import MockStt

    return MockStt()


def build_tts(name: str, settings: Settings, *, headers: dict | None = None) -> TtsProvider:
    check_configured(name, settings)
    if name == "local":
        from .local import LocalTts

        return LocalTts(timeout_s=settings.speech_timeout_ms / 1000)
    if name == "openai":
        from .openai_http import OpenAiTts

        return OpenAiTts(
            settings.openai_api_key,
            settings.openai_base_url,
            settings.openai_tts_model,
            settings.speech_timeout_ms / 1000,
            headers,
        )
    from .mock import MockTts

    return MockTts()


def tts_formats(name: str) -> tuple[str, ...]:
    """Content types the named TTS provider can produce (first = default), without building it."""
    return ("audio/mpeg", "audio/wav") if name == "openai" else ("audio/wav",)


def stt_accepts(name: str) -> tuple[str, ...] | None:
    """Content types the named STT provider accepts; None = every accepted audio type."""
    return ("audio/wav", "audio/x-wav", "audio/wave") if name == "local" else None


def tts_voices(name: str) -> tuple[str, ...] | None:
    """Voices the named TTS provider knows; None = any id is passed through to the provider."""
    if name == "local":
        from .local import FLITE_VOICES

        return FLITE_VOICES
    return None


__all__ += ["tts_formats", "stt_accepts", "tts_voices"]
