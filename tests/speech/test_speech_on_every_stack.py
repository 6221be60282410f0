"""The default (mock) speech path on every broker/store combination of the shared `stack` matrix, with audio
kept in the data directory (no bucket): multipart STT and TTS through the stack's worker."""

from __future__ import annotations

import io

from coachup.speech.audio import tone_wav, wav_duration_ms


def test_mock_stt_and_tts_with_audio_in_the_data_dir(stack):
    client = stack.app().test_client()
    # When a clip is uploaded for transcription with no bucket configured
    resp = client.post(
        "/api/v1/stt",
        data={"audio": (io.BytesIO(tone_wav(250)), "a.wav", "audio/wav"), "sessionId": "s-every"},
        content_type="multipart/form-data",
    )
    # Then the worker read it from the data directory and answered the documented shape
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["provider"] == "mock" and body["sttDurationMs"] == 250
    assert (stack.data_dir / body["objectKey"]).is_file()
    # And TTS audio is served from the data directory
    spoken = client.post("/api/v1/tts", json={"text": "Every stack speaks."}).get_json()
    audio = client.get(spoken["audioUrl"])
    assert audio.status_code == 200 and wav_duration_ms(audio.data) == spoken["durationMs"]
    assert spoken["uploaded"] is False
