"""Every regex (and parser step) that sees uploaded or requested text runs in linear time.

Each test compares the cost at two input sizes (never a wall-clock threshold): linear work grows about as
the sizes do, the quadratic or exponential patterns these replace grew by orders of magnitude more.
The sizes are small enough that the old patterns fail these tests in about a second.
"""

from __future__ import annotations

import pytest

from ingestion.parsers import parse_bytes, parse_string
from ingestion.parsers.markdown import parse_markdown_string
from ingestion.parsers.sniff import sniff_mime_type
from tests.security.cost import cost_growth

# Linear work at 10x the size costs about 10x (allocation effects add a little); quadratic about 100x.
SIZE_FACTOR = 10
LINEAR_CEILING = SIZE_FACTOR * 4


def test_sniffing_leading_html_comments_is_linear():
    # 40 `<!---->` froze a web worker for 15 s (exponential backtracking); 18 took ~0.1 s, 9 took ~20 us.
    def sniff(n: int) -> str:
        return sniff_mime_type(b"<!---->" * n + b"x", "upload.txt")

    growth = cost_growth(sniff, 9, 18)
    assert growth < 2 * 3, f"sniffing 18 comments cost {growth:.0f}x sniffing 9"
    assert sniff(40) == "text/plain"
    assert sniff_mime_type(b"<!-- a -->\n<!---->  <html><body>Hi</body></html>") == "text/html"


def test_markdown_heading_is_linear():
    # A long heading whose tail is not all closing characters: the old lazy title backtracked quadratically.
    def heading(n: int):
        return parse_markdown_string("# a" + " " * n + "b\n\nbody text\n")

    parsed = heading(10)
    assert parsed.blocks[0].heading_path == ("a" + " " * 10 + "b",)
    growth = cost_growth(heading, 1500, 1500 * SIZE_FACTOR)
    assert growth < LINEAR_CEILING, f"a 10x longer heading cost {growth:.0f}x"


def test_markdown_heading_titles_are_unchanged():
    parsed = parse_string("## Install ##\n\ntext\n\n# C#\n\nmore\n\n#  \n\nx\n\n### Deep #  \n\ny")
    titles = [b.heading_path[-1] for b in parsed.blocks if b.is_heading]
    assert titles == ["Install", "C", "", "Deep"]


@pytest.mark.parametrize(
    "text",
    [
        lambda n: "\n" + " \t" * n + "x",  # paragraph breaks
        lambda n: "." + "'" * n + "x",  # sentence ends (chunking)
        lambda n: "# " + "#" * n + "x",  # heading-looking lines
        lambda n: ("word " * n) + "\n\n" + ("# h\n" * (n // 10)),
    ],
    ids=["paragraph-breaks", "sentence-ends", "hashes", "mixed"],
)
def test_text_pipeline_is_linear(text):
    from ingestion.chunking import chunk_document

    def ingest(n: int):
        return chunk_document(parse_string(text(n)))

    growth = cost_growth(ingest, 2000, 2000 * SIZE_FACTOR, repeats=3)
    assert growth < LINEAR_CEILING, f"10x the text cost {growth:.0f}x"


def test_inline_styles_are_read_in_linear_time():
    from ingestion.parsers.html import style_hides

    assert style_hides("color: red; DISPLAY : None !important")
    assert style_hides("display:/* x */none")
    assert not style_hides("display: block; visibility: visible")

    def style(n: int) -> bool:
        return style_hides("/*" * n + "display:none")

    growth = cost_growth(style, 2000, 2000 * SIZE_FACTOR)
    assert growth < LINEAR_CEILING, f"10x the style attribute cost {growth:.0f}x"


def test_html_parsing_of_deep_nesting_is_bounded():
    # lxml caps nesting depth itself; a deeply nested upload parses (or fails cleanly), it never recurses
    # past Python's limit in our walk.
    data = b"<html><body>" + b"<div>" * 5000 + b"deep words" + b"</div>" * 5000 + b"</body></html>"
    parsed = parse_bytes(data, "deep.html")
    assert "deep words" in parsed.text
