"""The query's content words, one tokeniser for every caller: the follow-up rewrite (`search/answer.py`)
and the reranker's choice of each passage's window (`search/rerank.py`)."""

from __future__ import annotations

import re

# Words, with an inner apostrophe kept ("don't", "l’été"); no underscores.
WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves also may might must shall us tell explain
    describe please give show know thanks thank ok okay""".split()
)
STEM_CHARS = 5


def words(text: str) -> list[str]:
    """Every word of `text`, lowercased, in order."""
    return [w.lower() for w in WORD_RE.findall(text)]


def key_terms(text: str) -> list[str]:
    """Content words of `text`, in order, without repeats (no stopwords, none shorter than 2 letters)."""
    # dict keys keep first-seen order with constant-time membership (a list made this quadratic).
    found = dict.fromkeys(words(text))
    return [w for w in found if len(w) >= 2 and w not in STOPWORDS]


def term_key(word: str) -> str:
    """Crude stemming for matching a query word in a passage: `rotate`, `rotation` and `rotating` share
    `rotat`. For window choice only; the full-text index has its own (PostgreSQL's) stemmer."""
    word = word.lower()
    return word[:STEM_CHARS] if len(word) > STEM_CHARS else word


def key_term_stems(text: str) -> list[str]:
    """`key_terms`, stemmed by `term_key`, without repeats."""
    return list(dict.fromkeys(term_key(w) for w in key_terms(text)))
