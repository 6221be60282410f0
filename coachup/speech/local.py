"""The offline voice path: TTS through flite (Debian `flite`), STT through pocketsphinx (its PyPI wheel
ships an English model). flite's 16 kHz voices `kal16` and `awb` come back from pocketsphinx at 0-25%
word error rate; espeak-ng did much worse, hence flite.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from coachup.errors import PermanentError, ProviderUnconfigured, UpstreamTimeout

from .audio import TARGET_RATE, to_pcm16k_mono, wav_duration_ms
from .types import Synthesis, Transcription

__all__ = ["LocalStt", "LocalTts", "FLITE_VOICES", "flite_path"]

FLITE_VOICES = ("kal16", "awb")  # 16 kHz voices; the 8 kHz `kal` transcribes badly
_decoder_lock = threading.Lock()
_decoder = None
_initial_cmn = ""


def flite_path() -> str | None:
    return shutil.which("flite")


def _get_decoder():
    """One pocketsphinx decoder per process (loads in ~0.2 s); callers hold `_decoder_lock`.

    Cepstral mean normalisation adapts across utterances, so each call restores the initial CMN: the
    same audio gives the same transcript whatever ran before it.
    """
    global _decoder, _initial_cmn
    if _decoder is None:
        try:
            from pocketsphinx import Decoder
        except ImportError:  # pragma: no cover - a core dependency
            raise ProviderUnconfigured("pocketsphinx is not installed: pip install 'coachup[local-speech]'") from None
        _decoder = Decoder(samprate=TARGET_RATE, loglevel="FATAL")
        _initial_cmn = _decoder.get_cmn()
    _decoder.set_cmn(_initial_cmn)
    return _decoder


class LocalStt:
    """pocketsphinx on 16 kHz mono 16-bit PCM; accepts WAV only (no codec is bundled for webm/mp3)."""

    name = "local"
    accepts = ("audio/wav", "audio/x-wav", "audio/wave")

    def transcribe(self, audio: bytes, content_type: str, language_hint: str | None) -> Transcription:
        if content_type not in self.accepts:
            raise PermanentError("the local STT provider accepts WAV audio only", type="unsupported_audio")
        if language_hint and not language_hint.lower().startswith("en"):
            raise PermanentError("the local STT provider knows English only", type="unsupported_language")
        pcm = to_pcm16k_mono(audio)
        with _decoder_lock:
            decoder = _get_decoder()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            # hyp.prob is the utterance posterior; its per-word geometric mean reads as a confidence
            words = max(1, len(text.split()))
            confidence = max(0.0, float(hyp.prob)) ** (1 / words) if hyp is not None and text else 0.0
        return Transcription(
            text=text,
            confidence=round(min(1.0, max(0.0, confidence)), 3),
            language="en",
            model="pocketsphinx-en-us",
            duration_ms=len(pcm) * 1000 // (2 * TARGET_RATE),
        )


class LocalTts:
    """flite with a 16 kHz voice; the text goes through a temp file, never the command line (`ps`)."""

    name = "local"
    formats: tuple[str, ...] = ("audio/wav",)
    default_voice = "awb"  # the lower word error rate of the two through pocketsphinx

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s

    def synthesize(self, text: str, voice_id: str | None, content_type: str) -> Synthesis:
        exe = flite_path()
        if exe is None:
            raise ProviderUnconfigured("flite is not installed: apt-get install flite")
        voice = voice_id or self.default_voice
        if voice not in FLITE_VOICES:
            raise PermanentError(f"unknown local voice (use one of {', '.join(FLITE_VOICES)})", type="validation_error")
        with tempfile.TemporaryDirectory(prefix="coachup-tts-") as tmp:
            src, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            src.write_text(text, encoding="utf-8")
            try:
                done = subprocess.run(
                    [exe, "-voice", voice, "-f", str(src), "-o", str(out)],
                    capture_output=True,
                    timeout=self.timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise UpstreamTimeout("flite timed out") from None
            if done.returncode != 0 or not out.exists():
                raise PermanentError(f"flite failed with exit code {done.returncode}", type="tts_failed")
            audio = out.read_bytes()
        return Synthesis(
            audio=audio,
            content_type="audio/wav",
            duration_ms=wav_duration_ms(audio),
            voice_id=voice,
            model=f"flite-{voice}",
        )
