"""The deterministic offline providers: a real WAV whose length follows the text, a stable transcript."""

from __future__ import annotations

import hashlib

from .audio import tone_wav, wav_duration_ms
from .types import Synthesis, Transcription

__all__ = ["MockStt", "MockTts", "MS_PER_CHAR", "MOCK_TRANSCRIPT"]

MS_PER_CHAR = 60  # ~ 150 words per minute of 6.5 characters each
MOCK_TRANSCRIPT = "this is a mock transcript"


class MockStt:
    """Returns the same transcript for the same audio (its digest is in the text)."""

    name = "mock"

    def transcribe(self, audio: bytes, content_type: str, language_hint: str | None) -> Transcription:
        digest = hashlib.sha256(audio).hexdigest()[:8]
        duration = wav_duration_ms(audio) or len(audio) // 32  # 16 kHz 16-bit mono: 32 bytes per ms
        return Transcription(
            text=f"{MOCK_TRANSCRIPT} {digest}",
            confidence=0.99,
            language=language_hint or "en",
            model="mock-stt",
            duration_ms=duration,
        )


class MockTts:
    """A sine tone lasting `MS_PER_CHAR` per character (at least 200 ms)."""

    name = "mock"
    formats: tuple[str, ...] = ("audio/wav",)
    default_voice = "voice_mock"

    def synthesize(self, text: str, voice_id: str | None, content_type: str) -> Synthesis:
        duration = max(200, MS_PER_CHAR * len(text))
        audio = tone_wav(duration)
        return Synthesis(
            audio=audio,
            content_type="audio/wav",
            duration_ms=wav_duration_ms(audio),
            voice_id=voice_id or self.default_voice,
            model="mock-tts",
        )
