"""The speech seams: what an STT and a TTS provider take and give back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "AUDIO_CONTENT_TYPES",
    "EXTENSIONS",
    "Transcription",
    "Synthesis",
    "SttProvider",
    "TtsProvider",
    "normalize_content_type",
]

# content type -> file extension of every audio type STT accepts (and TTS may produce)
EXTENSIONS = {
    "audio/webm": "webm",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "mp4",
    "audio/x-m4a": "m4a",
}
AUDIO_CONTENT_TYPES = tuple(EXTENSIONS)


def normalize_content_type(value: str | None) -> str | None:
    """`audio/wav; codecs=1` -> `audio/wav`; None when it is not an accepted audio type."""
    if not value:
        return None
    base = value.split(";", 1)[0].strip().lower()
    return base if base in EXTENSIONS else None


@dataclass(frozen=True)
class Transcription:
    """What an STT provider heard. `confidence` in [0, 1]; `duration_ms` of the audio."""

    text: str
    confidence: float
    language: str
    model: str
    duration_ms: int


@dataclass(frozen=True)
class Synthesis:
    """Audio an TTS provider made: bytes, their content type, duration (ms) and the voice used."""

    audio: bytes
    content_type: str
    duration_ms: int
    voice_id: str
    model: str


class SttProvider(Protocol):
    """Speech to text."""

    name: str

    def transcribe(self, audio: bytes, content_type: str, language_hint: str | None) -> Transcription:
        """Transcribe `audio` (of `content_type`); raise a typed `coachup.errors` failure."""


class TtsProvider(Protocol):
    """Text to speech."""

    # read-only members: a provider declares them as class constants (a settable protocol attribute would
    # demand exactly `tuple[str, ...]`, and `("audio/wav",)` is a `tuple[str]`)
    @property
    def name(self) -> str: ...

    @property
    def formats(self) -> tuple[str, ...]:
        """Content types it can produce; the first is the default."""

    @property
    def default_voice(self) -> str: ...

    def synthesize(self, text: str, voice_id: str | None, content_type: str) -> Synthesis:
        """Speak `text` as `content_type` audio; raise a typed `coachup.errors` failure."""
