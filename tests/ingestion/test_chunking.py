"""Chunk boundaries and spans."""

from __future__ import annotations

import re

from ingestion.chunking import chunk_document, count_tokens
from ingestion.parsers import parse_bytes, parse_string
from tests.ingestion.files import make_pdf


def test_token_counter_approximates_subwords():
    assert count_tokens("The cat sat.") == 4
    assert count_tokens("internationalization") == 5  # 20 characters: a long word is several tokens


def test_chunks_have_exact_spans_budget_and_overlap():
    paragraphs = [
        " ".join(f"Sentence {p}-{s} talks about topic {p} in some detail." for s in range(12))
        for p in range(8)
    ]
    text = "# Manual\n\n" + "\n\n".join(paragraphs) + "\n\n## Appendix\n\nShort appendix text."
    parsed = parse_string(text)
    chunks = chunk_document(parsed, max_tokens=120, overlap=0.15)
    assert len(chunks) > 4
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.token_count <= 120
        # Never inside a word: the characters just outside the span are not word characters.
        assert chunk.char_start == 0 or not text[chunk.char_start - 1].isalnum()
        assert chunk.char_end == len(text) or not text[chunk.char_end].isalnum()
    body = [c for c in chunks if c.heading_path == "Manual"]
    overlaps = [a.char_end > b.char_start for a, b in zip(body, body[1:], strict=False)]
    assert any(overlaps), "consecutive chunks of a section share some sentences"
    assert chunks[-1].heading_path == "Manual > Appendix"
    assert chunks[-1].text.startswith("## Appendix")
    # A heading starts a new chunk: nothing of the manual's body is in the appendix chunk.
    assert "Sentence" not in chunks[-1].text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_paragraph_boundaries_are_preferred():
    para = "Alpha beta gamma delta epsilon. " * 10  # 100 tokens
    text = "\n\n".join([para.strip()] * 4)
    chunks = chunk_document(parse_string(text), max_tokens=250, overlap=0)
    for chunk in chunks:
        assert chunk.text.startswith("Alpha") and chunk.text.endswith("epsilon.")
    assert len(chunks) == 2


def test_words_without_punctuation_are_cut_at_whitespace():
    text = " ".join(f"word{i}" for i in range(3000))
    chunks = chunk_document(parse_string(text), max_tokens=100, overlap=0.15)
    assert len(chunks) > 10
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert re.fullmatch(r"word\d+( word\d+)*", chunk.text)
        assert chunk.token_count <= 100


def test_chunks_do_not_cross_pages():
    data = make_pdf([f"Page {n} text. " * 40 for n in range(1, 4)])
    parsed = parse_bytes(data)
    chunks = chunk_document(parsed, max_tokens=400)
    assert {c.page for c in chunks} == {1, 2, 3}
    for chunk in chunks:
        assert parsed.text[chunk.char_start : chunk.char_end] == chunk.text
        assert f"Page {chunk.page} text." in chunk.text
