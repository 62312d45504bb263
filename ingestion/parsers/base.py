"""The structured result every parser returns, and the one error type a parser raises."""

from __future__ import annotations

from dataclasses import dataclass, field

HEADING_SEPARATOR = " > "


class ParseError(Exception):
    """The file cannot be turned into text; the message is shown to people as the failure reason."""


@dataclass(frozen=True)
class Block:
    """A heading or a paragraph of the document's canonical text.

    ``text == document_text[char_start:char_end]`` always holds, so chunks built from blocks (and citations
    built from chunks) point at exact spans of the text stored on the document.
    """

    text: str
    char_start: int
    char_end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    is_heading: bool = False

    @property
    def heading_path_text(self) -> str:
        return HEADING_SEPARATOR.join(self.heading_path)


@dataclass
class ParsedDocument:
    text: str
    blocks: list[Block]
    mime_type: str
    metadata: dict = field(default_factory=dict)


class TextBuilder:
    """Builds canonical text from extracted pieces, recording each piece's span as a block."""

    separator = "\n\n"

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.blocks: list[Block] = []

    def add(
        self,
        text: str,
        *,
        heading_path: tuple[str, ...] = (),
        page: int | None = None,
        is_heading: bool = False,
    ) -> None:
        text = text.strip()
        if not text:
            return
        if self._parts:
            self._parts.append(self.separator)
            self._length += len(self.separator)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self.blocks.append(Block(text, start, self._length, heading_path, page, is_heading))

    def result(self, mime_type: str, metadata: dict | None = None) -> ParsedDocument:
        return ParsedDocument("".join(self._parts), self.blocks, mime_type, metadata or {})


def heading_path_push(path: tuple[str, ...], level: int, title: str) -> tuple[str, ...]:
    """The path after a heading of `level` (1-based): deeper headings nest, equal or higher ones replace."""
    return path[: max(0, level - 1)] + (title,)
