"""Cost of one speech call, in US cents, from a price table per provider.

STT is priced by audio seconds, TTS by characters. Figures are list prices at the time of writing
(OpenAI: whisper-1 $0.006/min, tts-1 $15 per 1M characters); offline providers cost nothing.
"""

from __future__ import annotations

__all__ = ["STT_CENTS_PER_SECOND", "TTS_CENTS_PER_CHAR", "stt_cost_cents", "tts_cost_cents"]

STT_CENTS_PER_SECOND = {"mock": 0.0, "local": 0.0, "openai": 0.6 / 60}
TTS_CENTS_PER_CHAR = {"mock": 0.0, "local": 0.0, "openai": 1500 / 1_000_000}


def stt_cost_cents(provider: str, duration_ms: int) -> float:
    """Cents for `duration_ms` of audio, rounded to 4 decimals (unknown providers cost 0)."""
    return round(STT_CENTS_PER_SECOND.get(provider, 0.0) * max(0, duration_ms) / 1000, 4)


def tts_cost_cents(provider: str, characters: int) -> float:
    """Cents for synthesizing `characters` characters, rounded to 4 decimals."""
    return round(TTS_CENTS_PER_CHAR.get(provider, 0.0) * max(0, characters), 4)
