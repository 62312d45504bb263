"""How the page shows passage text: source line wrapping joined, the question's words marked.

The server owns both so the browser only inserts what it is given (no second copy of the rules in
JavaScript), and both run in time linear in the text: passages are stored, user-controlled text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection

from ingestion.models import FULLTEXT_CONFIG

# A single newline, after a non-empty line, that does not start a heading, quote, list item or table
# row is source wrapping. The list-item lookahead only looks along the next line (`[ \t]*`, not `\s*`):
# with `\s*` every newline rescanned all whitespace after it, which made " \n \n \n..." quadratic
# (24k characters took 6.8 s). Bounded by its own line, each character is looked at a constant number
# of times, so the substitution is linear.
_SOFT_BREAK = re.compile(r"(?<=[^\n])\n(?![\n#>*\-+|]|[ \t]*\d+[.)]\s)")

# Private-use characters as ts_headline's markers: they cannot collide with HTML or with Markdown.
_HIT_START, _HIT_STOP = "\ue000", "\ue001"
_HIT_SPLIT = re.compile(f"({_HIT_START}[^{_HIT_START}{_HIT_STOP}]*{_HIT_STOP})")
MAX_HIGHLIGHT_QUERY_CHARS = 4000
# ts_headline compares every word of the text with every query word: a cap on the query's distinct words
# keeps the cost linear in the text whatever the question.
MAX_HIGHLIGHT_QUERY_WORDS = 64


def text_reflow(text: str) -> str:
    """Join lines the source wrapped, keeping paragraphs and heading/list/quote/table lines.

    Each joined newline becomes one space, so character offsets into the text stay valid."""
    return _SOFT_BREAK.sub(" ", text)


@dataclass(frozen=True)
class Segment:
    """A run of text; `hit` when it is one of the question's words (as the full-text search stems them)."""

    text: str
    hit: bool = False


def text_highlight(text: str, query: str) -> list[Segment]:
    """`text` cut into segments, the words matching `query` marked.

    PostgreSQL's ts_headline does the matching, so a word is marked exactly when the full-text search
    would match it (same configuration, same stemming): `embeddings` marks `embedded`."""
    if not text or not query.strip() or _HIT_START in text or _HIT_STOP in text:
        return [Segment(text)] if text else []
    sql = f"""
        WITH q AS (
            SELECT (SELECT COALESCE(string_agg(quote_literal(lexeme), ' | '), '')
                    FROM (SELECT lexeme FROM unnest(to_tsvector('{FULLTEXT_CONFIG}', %s)) LIMIT %s) words
                   )::tsquery AS query
        )
        SELECT ts_headline('{FULLTEXT_CONFIG}', %s, q.query, %s) FROM q
    """  # noqa: S608 - FULLTEXT_CONFIG is a constant; the texts are parameters
    options = f"HighlightAll=true, StartSel={_HIT_START}, StopSel={_HIT_STOP}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [query[:MAX_HIGHLIGHT_QUERY_CHARS], MAX_HIGHLIGHT_QUERY_WORDS, text, options])
        marked = cursor.fetchone()[0]
    # ts_headline keeps every character of the input; if a future version did not, show the text plain.
    if marked is None or marked.replace(_HIT_START, "").replace(_HIT_STOP, "") != text:
        return [Segment(text)]
    segments = []
    for part in _HIT_SPLIT.split(marked):
        if part.startswith(_HIT_START):
            segments.append(Segment(part[1:-1], hit=True))
        elif part:
            segments.append(Segment(part))
    return segments
