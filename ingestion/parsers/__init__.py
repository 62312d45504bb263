"""Parsers: bytes in, a ParsedDocument (canonical text + blocks with heading path, page and span) out.

The type is sniffed from the bytes; a parser raises ParseError with a reason people can read.
"""

from __future__ import annotations

from ingestion.parsers.base import Block, ParsedDocument, ParseError
from ingestion.parsers.sniff import AUDIO, DOCX, HTML, MARKDOWN, PDF, TEXT, sniff_mime_type

__all__ = ["Block", "ParseError", "ParsedDocument", "parse_bytes", "parse_string", "sniff_mime_type"]


def parse_bytes(data: bytes, filename: str = "", mime_type: str | None = None) -> ParsedDocument:
    mime_type = mime_type or sniff_mime_type(data, filename)
    if mime_type == PDF:
        from ingestion.parsers.pdf import parse_pdf

        parsed = parse_pdf(data)
    elif mime_type == DOCX:
        from ingestion.parsers.docx import parse_docx

        parsed = parse_docx(data)
    elif mime_type == HTML:
        from ingestion.parsers.html import parse_html

        parsed = parse_html(data)
    elif mime_type == MARKDOWN:
        from ingestion.parsers.markdown import parse_markdown

        parsed = parse_markdown(data)
    elif mime_type == TEXT:
        from ingestion.parsers.text import parse_text

        parsed = parse_text(data)
    elif mime_type in AUDIO:
        from ingestion.parsers.audio import parse_audio

        parsed = parse_audio(data, mime_type, filename)
    else:
        raise ParseError(f"Unsupported file type {mime_type}.")
    if not parsed.text.strip():
        raise ParseError("No text could be extracted from the file.")
    return parsed


def parse_string(text: str) -> ParsedDocument:
    """Text given directly (API `text`, bulk ingestion): Markdown headings are honoured when present."""
    from ingestion.parsers.markdown import looks_like_markdown, parse_markdown_string
    from ingestion.parsers.text import parse_text_string

    if looks_like_markdown(text):
        return parse_markdown_string(text, TEXT)
    return parse_text_string(text)
