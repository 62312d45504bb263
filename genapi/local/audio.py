"""Deterministic "transcription" for the stand-in (a test double, not speech recognition).

The transcript is the text stored in a WAV file's LIST/INFO ``ICMT`` comment chunk when present; otherwise a
fixed sentence naming the audio's duration. Tests and fixtures can thus carry their expected transcript.
"""

from __future__ import annotations

import struct


def wav_info(data: bytes) -> tuple[str | None, float | None]:
    """``(comment, duration_seconds)`` of a RIFF/WAVE file; ``(None, None)`` for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None, None
    pos, comment, byte_rate, data_size = 12, None, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt " and len(body) >= 12:
            byte_rate = struct.unpack("<I", body[8:12])[0]
        elif cid == b"data":
            data_size = min(size, len(data) - pos - 8)
        elif cid == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                sid, ssize = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                if sid == b"ICMT":
                    comment = body[sub + 8 : sub + 8 + ssize].rstrip(b"\x00").decode("utf-8", "replace")
                sub += 8 + ssize + (ssize & 1)
        pos += 8 + size + (size & 1)
    duration = data_size / byte_rate if byte_rate and data_size is not None else None
    return comment, duration


def make_wav(seconds: float = 1.0, *, comment: str | None = None, rate: int = 16000) -> bytes:
    """A silent mono 16-bit WAV, optionally with an INFO comment (handy for fixtures)."""
    n = int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if comment is not None:
        text = comment.encode("utf-8") + b"\x00"
        if len(text) & 1:
            text += b"\x00"
        info = b"INFO" + b"ICMT" + struct.pack("<I", len(text)) + text
        chunks += b"LIST" + struct.pack("<I", len(info)) + info
    chunks += b"data" + struct.pack("<I", n * 2) + b"\x00\x00" * n
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def transcribe(data: bytes, filename: str = "") -> tuple[str, float]:
    comment, duration = wav_info(data)
    if duration is None:
        # Not a WAV we can read: a rough duration from the size at 128 kbit/s (mp3/ogg-ish).
        duration = len(data) / 16000
    if comment:
        return comment.strip(), duration
    return f"This is a placeholder transcript of {duration:.1f} seconds of audio.", duration
