"""Token-aware chunking that keeps heading path, page and the exact character span of every chunk.

Chunks never cross a heading or a page; inside a section they are packed from whole paragraphs, falling back
to sentences and then to whitespace-separated words, so no chunk starts or ends inside a word. Consecutive
chunks of a section overlap by about `overlap` of the budget (whole sentences), so a passage cut at a chunk
boundary is still found whole in one of them. `document_text[c.char_start:c.char_end] == c.text` always.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ingestion.parsers.base import HEADING_SEPARATOR, Block, ParsedDocument

# tiktoken would be the natural tokenizer, but it downloads its BPE tables on first use and the service runs
# without network access (and the provider's models use their own tokenizers anyway). This approximation —
# words and punctuation marks, a long word counting one token per four characters — tracks BPE counts for
# English prose within about 10-15%, which is all a chunk budget needs.
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002][\"'\u201d\u2019)\]]*(?=\s)|\n")


def count_tokens(text: str) -> int:
    # ceil(len / 4) per token: 1 for short tokens, a token per four characters for long ones.
    return sum((len(token) + 3) >> 2 for token in _TOKEN.findall(text))


@dataclass(frozen=True)
class ChunkSpec:
    ordinal: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    heading_path: str
    page: int | None
    is_heading_only: bool = False

    def embedding_input(self, title: str = "") -> str:
        """What is embedded: the title and heading path give a passage its context."""
        head = "\n".join(part for part in (title.strip(), self.heading_path) if part)
        return f"{head}\n\n{self.text}" if head else self.text

    def content_sha256(self, title: str = "") -> str:
        return hashlib.sha256(self.embedding_input(title).encode("utf-8")).hexdigest()


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    paragraph_start: bool  # a paragraph (or heading) begins here: the preferred place to cut


def chunk_document(parsed: ParsedDocument, max_tokens: int = 400, overlap: float = 0.15) -> list[ChunkSpec]:
    max_tokens = max(16, int(max_tokens))
    overlap_tokens = max(0, int(max_tokens * max(0.0, min(overlap, 0.5))))
    text = parsed.text
    chunks: list[ChunkSpec] = []
    for section in _sections(parsed.blocks):
        units: list[_Unit] = []
        for block in section:
            units.extend(_units(text, block, max_tokens, overlap_tokens))
        heading_path = section[-1].heading_path_text if section else ""
        page = section[0].page
        for start, end, tokens in _pack(units, max_tokens, overlap_tokens):
            chunks.append(ChunkSpec(len(chunks), text[start:end], start, end, tokens, heading_path, page))
    return chunks


def _sections(blocks: list[Block]) -> list[list[Block]]:
    """Runs of blocks under one heading on one page; a heading with no body joins the next section."""
    sections: list[list[Block]] = []
    current: list[Block] = []
    for block in blocks:
        boundary = bool(current) and (
            block.page != current[-1].page or (block.is_heading and not all(b.is_heading for b in current))
        )
        if boundary:
            sections.append(current)
            current = []
        current.append(block)
    if current:
        sections.append(current)
    # Body blocks carry the section's heading path; use the deepest path seen for the whole section.
    return sections


def _units(text: str, block: Block, max_tokens: int, overlap_tokens: int) -> list[_Unit]:
    tokens = count_tokens(block.text)
    if tokens <= max_tokens and tokens <= max(overlap_tokens, 1) * 2:
        return [_Unit(block.char_start, block.char_end, tokens, True)]
    units: list[_Unit] = []
    for start, end in _sentences(text, block.char_start, block.char_end):
        sentence_tokens = count_tokens(text[start:end])
        if sentence_tokens <= max(overlap_tokens, max_tokens // 4, 1):
            units.append(_Unit(start, end, sentence_tokens, not units))
            continue
        # A run-on sentence: cut at whitespace into pieces about the overlap size.
        piece_budget = max(overlap_tokens, max_tokens // 8, 1)
        piece_start = piece_end = None
        piece_tokens = 0
        for word in _WORD.finditer(text, start, end):
            word_tokens = count_tokens(word.group())
            if piece_start is not None and piece_tokens + word_tokens > piece_budget:
                units.append(_Unit(piece_start, piece_end, piece_tokens, not units))
                piece_start, piece_tokens = None, 0
            if piece_start is None:
                piece_start = word.start()
            piece_end = word.end()
            piece_tokens += word_tokens
        if piece_start is not None:
            units.append(_Unit(piece_start, piece_end, piece_tokens, not units))
    return units


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append((pos, match.end()))
        pos = match.end()
    spans.append((pos, end))
    result = []
    for s, e in spans:
        segment = text[s:e]
        stripped = segment.strip()
        if stripped:
            s += len(segment) - len(segment.lstrip())
            result.append((s, s + len(stripped)))
    return result


def _span_tokens(units: list[_Unit]) -> int:
    return sum(u.tokens for u in units)


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[tuple[int, int, int]]:
    """Greedy packing with a preference for paragraph boundaries, plus sentence-level overlap."""
    out: list[tuple[int, int, int]] = []
    i = 0
    n = len(units)
    while i < n:
        j, tokens = i, 0
        while j < n and (j == i or tokens + units[j].tokens <= max_tokens):
            tokens += units[j].tokens
            j += 1
        if j < n:
            # Cut at the last paragraph start in the second half of the chunk, when there is one.
            for k in range(j - 1, i, -1):
                if units[k].paragraph_start and _span_tokens(units[i:k]) >= max_tokens // 2:
                    j = k
                    break
        chosen = units[i:j]
        out.append((chosen[0].start, chosen[-1].end, _span_tokens(chosen)))
        if j >= n:
            break
        # Overlap: restart a few whole units back, never at or before this chunk's own start.
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].tokens <= overlap_tokens:
            back -= 1
            carried += units[back].tokens
        i = back
    return out


def chunk_heading_path(path: tuple[str, ...]) -> str:
    return HEADING_SEPARATOR.join(path)
