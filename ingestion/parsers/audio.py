"""Audio (wav, mp3, flac, ogg): transcribed by the provider's /v1/audio/transcriptions through genapi.

Provider errors propagate unchanged so the task can retry transient ones.
"""

from __future__ import annotations

from django.conf import settings

from ingestion.parsers.base import ParsedDocument, ParseError
from ingestion.parsers.text import parse_text_string

EXTENSIONS = {"audio/wav": "wav", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/ogg": "ogg"}


def parse_audio(data: bytes, mime_type: str, filename: str = "") -> ParsedDocument:
    from genapi import get_client

    name = filename or f"audio.{EXTENSIONS.get(mime_type, 'bin')}"
    transcript = get_client().audio_transcriptions_create(
        data, filename=name, model=settings.GENAPI_TRANSCRIPTION_MODEL
    )
    if not transcript.strip():
        raise ParseError("The audio transcription is empty (no speech found).")
    parsed = parse_text_string(transcript, mime_type)
    parsed.metadata["transcribed_with"] = settings.GENAPI_TRANSCRIPTION_MODEL
    return parsed
