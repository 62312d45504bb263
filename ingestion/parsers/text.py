"""Plain text: encoding detected from the bytes, paragraphs split at blank lines."""

from __future__ import annotations

import re

from charset_normalizer import from_bytes

from ingestion.parsers.base import Block, ParsedDocument, ParseError

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Control characters other than tab/newline/form feed/carriage return mean "this is binary, not text".
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


_PREFERRED_ON_TIE = ("utf_8", "cp1252", "latin_1", "cp1251", "shift_jis", "gb18030", "euc_kr")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def decode_text(data: bytes) -> str | None:
    """The bytes as text, or None when they are not text in any encoding we can recognise."""
    if not data:
        return ""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        matches = from_bytes(data[: 1024 * 1024] if len(data) > 1024 * 1024 else data)
        best = matches.best()
        if best is None:
            return None
        # Single-byte Western encodings often tie (cp1250 and cp1252 read French equally "well"); on a tie
        # prefer the one most documents are actually written in.
        tied = {m.encoding for m in matches if m.chaos == best.chaos and m.coherence == best.coherence}
        for preferred in _PREFERRED_ON_TIE:
            if preferred in tied and preferred != best.encoding:
                best = next(m for m in matches if m.encoding == preferred)
                break
        try:
            text = data.decode(best.encoding)
        except (UnicodeDecodeError, LookupError):
            return None
    sample = text[:20000]
    if sample and len(_CONTROL.findall(sample)) > max(2, len(sample) // 100):
        return None
    return normalize_newlines(text)


def paragraph_blocks(text: str, start: int = 0, end: int | None = None, **block_fields) -> list[Block]:
    """Blocks for the paragraphs of `text[start:end]`, with offsets into `text`."""
    end = len(text) if end is None else end
    blocks: list[Block] = []
    pos = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        blocks.extend(_block(text, pos, match.start(), **block_fields))
        pos = match.end()
    blocks.extend(_block(text, pos, end, **block_fields))
    return blocks


def _block(text: str, start: int, end: int, **fields) -> list[Block]:
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return []
    start += len(segment) - len(segment.lstrip())
    return [Block(stripped, start, start + len(stripped), **fields)]


def parse_text_string(text: str, mime_type: str = "text/plain") -> ParsedDocument:
    text = normalize_newlines(text)
    return ParsedDocument(text, paragraph_blocks(text), mime_type)


def parse_text(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    if text is None:
        raise ParseError("The file is not text in any encoding we recognise.")
    return parse_text_string(text)
