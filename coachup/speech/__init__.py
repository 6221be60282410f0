"""Speech and media: STT and TTS providers behind small seams, audio storage, the safe `audioUrl` fetcher.

Pure core: imports neither Flask nor Celery. Providers: `mock` (deterministic), `local` (flite +
pocketsphinx, offline), `openai` (HTTP with `requests`). Storage: the data directory or S3 (boto3).
"""

from .types import AUDIO_CONTENT_TYPES, SttProvider, Synthesis, Transcription, TtsProvider

__all__ = ["AUDIO_CONTENT_TYPES", "Synthesis", "SttProvider", "Transcription", "TtsProvider"]
