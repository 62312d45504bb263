"""Markdown: the canonical text is the source itself; ATX headings (`# ...`) build the heading path."""

from __future__ import annotations

import re

from ingestion.parsers.base import Block, ParsedDocument, ParseError, heading_path_push
from ingestion.parsers.text import decode_text, normalize_newlines, paragraph_blocks

# The title's trailing spaces and closing #s are stripped in Python: a lazy `(.+?)[ \t#]*$` retries the
# tail at every position of a long heading (quadratic: a 48k-character heading took 16 s).
_HEADING = re.compile(r" {0,3}(#{1,6})[ \t]+(.+)")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def heading_title(rest: str) -> str:
    """The title of an ATX heading from the text after its `#`s: closing #s and spaces dropped."""
    return (rest.rstrip(" \t#") or rest[:1]).strip()


def looks_like_markdown(text: str) -> bool:
    return bool(re.search(r"(?m)^ {0,3}#{1,6}[ \t]+\S", text[:20000]))


def parse_markdown_string(text: str, mime_type: str = "text/markdown") -> ParsedDocument:
    text = normalize_newlines(text)
    blocks: list[Block] = []
    path: tuple[str, ...] = ()
    section_start = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(line)
        stripped = line.rstrip("\n")
        if _FENCE.match(stripped):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(stripped)
        if not match:
            continue
        blocks.extend(paragraph_blocks(text, section_start, line_start, heading_path=path))
        title = heading_title(match.group(2))
        path = heading_path_push(path, len(match.group(1)), title)
        offset = line_start + len(stripped) - len(stripped.lstrip())
        heading = stripped.strip()
        blocks.append(Block(heading, offset, offset + len(heading), path, None, True))
        section_start = pos
    blocks.extend(paragraph_blocks(text, section_start, len(text), heading_path=path))
    return ParsedDocument(text, blocks, mime_type)


def parse_markdown(data: bytes) -> ParsedDocument:
    text = decode_text(data)
    if text is None:
        raise ParseError("The file is not text in any encoding we recognise.")
    return parse_markdown_string(text)
