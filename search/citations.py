"""`[n]` markers in an answer → citations of the numbered passages the model was given.

Accepted forms: `[1]`, `[1, 2]`, `[1; 2]`, `[1][2]`. A number with no passage is removed (never invented);
a marker left with no valid number disappears with the space before it. The same filter runs over a
whole answer and over a stream of deltas, so a marker split across deltas (`"[1"` + `"2]"`) is handled
and the streamed text equals the non-streamed one.
"""

from __future__ import annotations

import re

from search.types import Citation, Passage

SNIPPET_CHARS = 280
_MAX_MARKER_CHARS = 40
MARKER_RE = re.compile(r"\[\s*(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\s*\]")
# What a marker can look like before its closing bracket has arrived. Spaces only ever follow a token, so
# there is one way to match (`\s*[,;]\s*` inside a repeat backtracked exponentially on "[1, , , ,x").
_MARKER_PREFIX_RE = re.compile(r"\[\s*(?:\d{1,4}\s*(?:[,;]\s*(?:\d{1,4}\s*)?)*)?\Z")


class CitationFilter:
    """Feed answer text (whole or in deltas); get back the text with invalid markers removed.

    Holds back only what could still become a marker (an open `[...` and the whitespace before it), so
    deltas flow with at most a few characters of delay.
    """

    def __init__(self, passage_count: int):
        self.passage_count = passage_count
        self.cited: list[int] = []  # passage numbers, in order of first citation
        self._pending = ""
        self._dropped_spaces: str | None = None  # spaces before a dropped marker, pending the next char

    def _marker(self, numbers: str) -> str:
        valid = []
        for raw in re.split(r"\s*[,;]\s*", numbers.strip()):
            n = int(raw)
            if 1 <= n <= self.passage_count and n not in valid:
                valid.append(n)
        for n in valid:
            if n not in self.cited:
                self.cited.append(n)
        return "[" + ", ".join(str(n) for n in valid) + "]" if valid else ""

    @staticmethod
    def _rejoin(spaces: str, following: str) -> str:
        """After a dropped marker: keep the space before it only when a word or another marker follows
        (`"a [9] b"` → `"a b"`, `"a [9]."` → `"a."`, `"a [9][1]"` → `"a [1]"`)."""
        first = following[0]
        return spaces + following if (first.isalnum() or first == "[") else following

    def feed(self, text: str) -> str:
        self._pending += text
        return self._drain(final=False)

    def flush(self) -> str:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> str:
        # Positions into one buffer rather than slices of it: linear in the text however many `[` it holds.
        out: list[str] = []
        buf = self._pending
        if self._dropped_spaces is not None and buf:
            buf = self._rejoin(self._dropped_spaces, buf)
            self._dropped_spaces = None
        pos, size = 0, len(buf)
        lead = ""  # spaces before a dropped marker, kept because a word or a marker follows
        while pos < size:
            i = buf.find("[", pos)
            if i < 0:
                # Keep trailing whitespace: it belongs to a marker that may follow and be dropped.
                end = size if final else len(buf.rstrip())
                if end > pos:
                    out.append(lead + buf[pos:end])
                    lead, pos = "", end
                break
            ws_start = i
            while ws_start > pos and buf[ws_start - 1].isspace():
                ws_start -= 1
            if ws_start > pos:
                out.append(lead + buf[pos:ws_start])
                lead = ""
            spaces = lead + buf[ws_start:i]
            lead = ""
            match = MARKER_RE.match(buf, i)
            if match:
                replacement = self._marker(match.group(1))
                pos = match.end()
                if replacement:
                    out.append(spaces + replacement)
                elif pos < size:
                    if buf[pos].isalnum() or buf[pos] == "[":
                        lead = spaces
                elif not final:
                    self._dropped_spaces = spaces
                continue
            if not final and size - i <= _MAX_MARKER_CHARS and _MARKER_PREFIX_RE.match(buf, i):
                lead, pos = spaces, i  # may still become a marker: wait for more text
                break
            out.append(spaces + "[")
            pos = i + 1
        self._pending = lead + buf[pos:]
        return "".join(out)


def citation_markers_clean(text: str, passage_count: int) -> tuple[str, list[int]]:
    """The answer with invalid markers removed, and the cited passage numbers in order of first citation."""
    flt = CitationFilter(passage_count)
    cleaned = flt.feed(text) + flt.flush()
    return cleaned, list(flt.cited)


def snippet_of(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "…"


def citations_build(numbers: list[int], passages: list[Passage]) -> list[Citation]:
    """Citations for the cited passage numbers ([1] is passages[0]); numbers without a passage are skipped."""
    citations = []
    for n in numbers:
        if not 1 <= n <= len(passages):
            continue
        p = passages[n - 1]
        citations.append(
            Citation(
                n=n,
                document_id=p.document_id,
                chunk_id=p.chunk_id,
                title=p.title,
                page=p.page,
                char_start=p.char_start,
                char_end=p.char_end,
                snippet=snippet_of(p.text),
                url=p.url,
            )
        )
    return citations


def citations_parse(text: str, passages: list[Passage]) -> tuple[str, list[Citation]]:
    """Clean `text` of markers with no passage and return it with the citations it makes."""
    cleaned, numbers = citation_markers_clean(text, len(passages))
    return cleaned, citations_build(numbers, passages)
