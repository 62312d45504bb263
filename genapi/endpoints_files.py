"""Audio transcriptions and batches."""

from __future__ import annotations

import mimetypes
import pathlib
from typing import Any

from genapi.errors import (
    BadResponseError,
    InvalidRequestError,
)
from genapi.limiter import estimate_tokens
from genapi.transport import Transport, drop_none


class FileEndpoints(Transport):
    def audio_transcriptions_create(
        self,
        file: bytes | pathlib.Path | str,
        *,
        filename: str,
        model: str,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
    ) -> str:
        if isinstance(file, (str, pathlib.Path)):
            path = pathlib.Path(file)
            size = path.stat().st_size
            if size > self.config.max_audio_bytes:
                raise InvalidRequestError(self._too_big(size), code="file_too_large")
            content = path.read_bytes()
        else:
            content = bytes(file)
        if len(content) > self.config.max_audio_bytes:
            raise InvalidRequestError(self._too_big(len(content)), code="file_too_large")
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        form = drop_none(
            {
                "model": model,
                "language": language,
                "prompt": prompt,
                "response_format": "json",
                "temperature": None if temperature is None else str(temperature),
            }
        )
        data, retries, ms = self._call_json(
            "POST",
            "audio/transcriptions",
            endpoint="audio/transcriptions",
            model=model,
            files={"file": (filename, content, mime)},
            data=form,
        )
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise BadResponseError("transcription without text")
        self._emit(model, "audio/transcriptions", None, ms, retries, 0, estimate_tokens(data["text"]))
        return data["text"]

    def _too_big(self, size: int) -> str:
        limit = self.config.max_audio_bytes
        return f"audio file is {size / 1e6:.1f} MB; the provider accepts at most {limit / 2**20:.0f} MB"

    def batches_create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        output_expires_after: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = drop_none(
            {
                "input_file_id": input_file_id,
                "endpoint": endpoint,
                "completion_window": completion_window,
                "output_expires_after": output_expires_after,
            }
        )
        body.update(drop_none(extra))
        data, retries, ms = self._call_json("POST", "batches", endpoint="batches", model=None, json_body=body)
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data

    def batches_get(self, batch_id: str) -> dict[str, Any]:
        data, retries, ms = self._call_json("GET", f"batches/{batch_id}", endpoint="batches", model=None)
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data

    def batches_list(self, *, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        params = drop_none({"after": after, "limit": limit})
        data, retries, ms = self._call_json("GET", "batches", endpoint="batches", model=None, params=params)
        self._emit(None, "batches", None, ms, retries)
        return data

    def batches_cancel(self, batch_id: str) -> dict[str, Any]:
        data, retries, ms = self._call_json(
            "POST", f"batches/{batch_id}/cancel", endpoint="batches", model=None
        )
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data
