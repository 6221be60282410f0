"""WAV helpers (stdlib only): read PCM, downmix, resample to 16 kHz mono 16-bit, write, measure."""

from __future__ import annotations

import io
import math
import wave
from array import array

from coachup.errors import PermanentError

__all__ = ["TARGET_RATE", "read_wav", "to_pcm16k_mono", "write_wav", "wav_duration_ms", "tone_wav"]

TARGET_RATE = 16_000  # pocketsphinx's English model is trained on 16 kHz audio


def read_wav(data: bytes) -> tuple[array, int, int]:
    """(16-bit samples interleaved, channels, sample rate); `PermanentError` unless 16-bit PCM WAV."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise PermanentError(
            f"audio is not a readable WAV file: {type(exc).__name__}", type="unsupported_audio"
        ) from None
    if width != 2:
        raise PermanentError("only 16-bit PCM WAV is supported by this provider", type="unsupported_audio")
    samples = array("h")
    samples.frombytes(frames[: len(frames) - len(frames) % 2])
    return samples, channels, rate


def to_pcm16k_mono(data: bytes) -> bytes:
    """Raw 16 kHz mono 16-bit little-endian PCM from a WAV file of any rate and channel count."""
    samples, channels, rate = read_wav(data)
    if channels > 1:
        samples = array("h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)))
    if rate != TARGET_RATE and len(samples) > 1:
        step = rate / TARGET_RATE
        count = int(len(samples) / step)
        last = len(samples) - 1
        out = array("h", bytes(2 * count))
        for i in range(count):  # linear interpolation: enough for speech recognition
            pos = i * step
            j = int(pos)
            frac = pos - j
            nxt = samples[j + 1] if j < last else samples[j]
            out[i] = int(samples[j] + (nxt - samples[j]) * frac)
        samples = out
    return samples.tobytes()


def write_wav(pcm: bytes, *, rate: int = TARGET_RATE, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def wav_duration_ms(data: bytes) -> int:
    """Duration of a WAV file in milliseconds (0 when unreadable)."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            return int(w.getnframes() * 1000 / (w.getframerate() or 1))
    except (wave.Error, EOFError):
        return 0


def tone_wav(duration_ms: int, *, freq_hz: float = 440.0, rate: int = TARGET_RATE) -> bytes:
    """A quiet sine tone of `duration_ms`: deterministic audio for the mock provider."""
    count = rate * duration_ms // 1000
    samples = array("h", (int(3000 * math.sin(2 * math.pi * freq_hz * i / rate)) for i in range(count)))
    return write_wav(samples.tobytes(), rate=rate)
