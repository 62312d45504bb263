"""A fixed English background for the stand-in's lexical reranker: how rare each (stemmed) word is in general
English, so a rerank can weigh a query's words without looking at the other documents of the request.

A provider's reranker (a cross-encoder such as bge-reranker-v2-m3) scores each (query, passage) pair on its
own: the same passage gets the same score whatever else is sent with it. BM25 over the request's documents
does not (its IDF, average length and so its scores follow the request), so the stand-in takes its term
weights from this table instead.

The table (`data/background_en.tsv.gz`, one `stem<TAB>count` a line) is built once from SymSpell's
English frequency dictionary (82,765 words with their counts in Google Books Ngrams; MIT licence, notice in
`data/background_en.LICENSE`), each word folded to the stand-in's stem and counts rounded to three
significant digits:

    python -m genapi.local.background path/to/frequency_dictionary_en_82_765.txt

A word's weight is BM25's IDF for the share of documents expected to hold it: `p = 1 - exp(-L q)` for a
document of REFERENCE_WORDS words and the word's share `q` of all words, `idf = log(1 + (1 - p) / p)`,
capped at IDF_MAX (a word missing from the table, e.g. a rare technical term or a number, gets the cap).
"""

from __future__ import annotations

import gzip
import math
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "background_en.tsv.gz"
REFERENCE_WORDS = 200  # words of a typical passage (a 400-token chunk holds ~250)
IDF_MAX = math.log(1 + 10_000)  # a word in one document of 10,000: the weight of a word never seen


@lru_cache(maxsize=1)
def _table() -> tuple[dict[str, int], int]:
    counts: dict[str, int] = {}
    with gzip.open(TABLE, "rt", encoding="utf-8") as f:
        for line in f:
            term, count = line.rstrip("\n").split("\t")
            counts[term] = int(count)
    return counts, sum(counts.values())


@lru_cache(maxsize=200_000)
def idf(term: str) -> float:
    """The weight of a stemmed content word (genapi.local.text.terms), the same in every request."""
    counts, total = _table()
    count = counts.get(term)
    if not count:
        return IDF_MAX
    p = -math.expm1(-REFERENCE_WORDS * count / total)
    return min(IDF_MAX, math.log(1 + (1 - p) / p))


def build(source: str, out: Path = TABLE) -> int:
    """Fold SymSpell's `word count` lines into `stem<TAB>count` (three significant digits), sorted, gzipped
    reproducibly (no timestamp). Returns the number of stems."""
    from genapi.local.text import stem, words

    counts: Counter[str] = Counter()
    for line in Path(source).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        for word in words(parts[0]):
            counts[stem(word)] += int(parts[1])

    def rounded(c: int) -> int:
        step = 10 ** max(0, int(math.log10(c)) - 2)
        return round(c / step) * step

    text = "".join(f"{t}\t{rounded(c)}\n" for t, c in sorted(counts.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    return len(counts)


if __name__ == "__main__":  # pragma: no cover - run by hand when the source list changes
    print(build(sys.argv[1]))
