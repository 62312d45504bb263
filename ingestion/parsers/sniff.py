"""The MIME type from the bytes (magic numbers), never from the file name or the client's claim."""

from __future__ import annotations

import io
import re
import zipfile

from ingestion.parsers.base import ParseError

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
WAV, MP3, FLAC, OGG = "audio/wav", "audio/mpeg", "audio/flac", "audio/ogg"
AUDIO = {WAV, MP3, FLAC, OGG}

# Leading comments are skipped by `_html_start` with str.find, not by a `(<!--.*?-->\s*)*` group: that
# group can split a run of comments in exponentially many ways (40 `<!---->` froze a worker for 15 s).
_HTML_OPENING = re.compile(rb"<(!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE)
_SPACES = re.compile(rb"\s*")
_HTML_MARKERS = re.compile(rb"<(html|body|head|title|main|article|div|p|h1|meta)[\s>/]", re.IGNORECASE)


def sniff_mime_type(data: bytes, filename: str = "", *, truncated: bool = False) -> str:
    """Raises ParseError for an empty file, a zip that is not a DOCX, or bytes that are not a known type."""
    from ingestion.parsers.text import decode_text

    if not data or not data.strip():
        raise ParseError("The file is empty.")
    head = data[:2048]
    if head.startswith(b"%PDF") or b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ParseError(f"The file is a corrupt zip archive ({exc}).") from exc
        if "word/document.xml" in names:
            return DOCX
        raise ParseError("Zip archives are not accepted (only DOCX files); upload the files inside instead.")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0):
        return MP3
    text_head = head.lstrip(b"\xef\xbb\xbf")
    if _html_start(text_head) or (text_head.lstrip().startswith(b"<") and _HTML_MARKERS.search(head)):
        return HTML
    text = decode_text(data)
    # A prefix of a file may end inside a multi-byte character.
    for cut in (1, 2, 3) if truncated and text is None else ():
        text = decode_text(data[:-cut])
        if text is not None:
            break
    if text is None:
        raise ParseError("Unknown file type: not PDF, DOCX, HTML, Markdown, text or wav/mp3/flac/ogg audio.")
    from ingestion.parsers.markdown import looks_like_markdown

    if filename.lower().endswith((".md", ".markdown")) or looks_like_markdown(text):
        return MARKDOWN
    return TEXT


def _html_start(head: bytes) -> bool:
    """Whether `head` opens like an HTML document, after any whitespace and comments (linear time)."""
    pos = 0
    while True:
        pos = _SPACES.match(head, pos).end()
        if not head.startswith(b"<!--", pos):
            return _HTML_OPENING.match(head, pos) is not None
        end = head.find(b"-->", pos + 4)
        if end < 0:
            return False
        pos = end + 3
