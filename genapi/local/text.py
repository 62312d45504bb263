"""Tokenizer, light stemmer, hash embeddings and per-pair BM25 shared by the stand-in's engines."""

from __future__ import annotations

import math
import re
import threading
import zlib
from array import array
from collections import Counter
from functools import lru_cache

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is a declared dependency, the fallback keeps the server usable
    np = None

_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves also may might must shall us i'm it's was were been le la
    les un une des du de et est en que qui dans pour par sur au aux ce ces der die das und ist ein eine
    """.split()
)

_SUFFIXES = (
    "ational", "tional", "ization", "fulness", "ousness", "iveness", "ements", "ations", "ation", "ement",
    "ments", "ness", "ment", "ings", "ing", "edly", "ies", "ied", "ers", "ed", "er", "ly", "es", "s",
)  # fmt: skip


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A deliberately light suffix stripper (plural, -ing, -ed, -ation...): enough to match word forms."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suf in _SUFFIXES:
        if word.endswith(suf) and len(word) - len(suf) >= 3:
            base = word[: -len(suf)]
            if suf in ("ies", "ied"):
                return base + "y"
            if suf == "s" and word.endswith("ss"):
                return word
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":  # running -> run
                base = base[:-1]
            return base
    return word


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def terms(text: str) -> list[str]:
    """Stemmed content words (stopwords dropped): the unit of lexical matching."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def _h(s: str) -> int:
    return zlib.crc32(s.encode("utf-8"))


class HashEmbedder:
    """Deterministic feature-hashing embeddings.

    Features: stemmed word unigrams (weight 1; stopwords 0.15) and character 3/4-grams of each word (together
    weighing ``ngram_weight``), signed hashing into ``dims`` buckets, sublinear tf per word, L2-normalised.
    Each word's hashed features are computed once and kept in flat arrays, so embedding a batch is one
    dictionary look-up per distinct word plus a few vectorised numpy operations.
    """

    def __init__(self, ngram_weight: float = 0.6, max_vocab: int = 2_000_000):
        self.ngram_weight = ngram_weight
        self.max_vocab = max_vocab
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._vocab: dict[str, int] = {}
        self._start = array("q")
        self._len = array("q")
        self._hash = array("q")
        self._val = array("d")

    def _word_features(self, word: str) -> list[tuple[int, float]]:
        feats: list[tuple[int, float]] = []
        if word in STOPWORDS:
            feats.append((_h("w:" + word), 0.15))
            return feats
        feats.append((_h("w:" + stem(word)), 1.0))
        padded = f"<{word}>"
        grams = [padded[i : i + n] for n in (3, 4) for i in range(len(padded) - n + 1)]
        if grams:
            w = self.ngram_weight / math.sqrt(len(grams))
            feats.extend((_h(g), w) for g in grams)
        return feats

    def _word_id(self, word: str) -> int:
        wid = self._vocab.get(word)
        if wid is None:
            if len(self._vocab) >= self.max_vocab:  # bound memory in long-running servers
                self._reset()
            wid = len(self._vocab)
            feats = self._word_features(word)
            self._start.append(len(self._hash))
            self._len.append(len(feats))
            for h, v in feats:
                self._hash.append(h & 0x7FFFFFFF)
                self._val.append(v if (h >> 31) & 1 else -v)
            # Registered last: a failure above must not leave a word whose features are missing.
            self._vocab[word] = wid
        return wid

    def embed(self, texts: list[str], dims: int) -> list[list[float]]:
        if np is None:
            return [self._embed_py(t, dims) for t in texts]
        return self.embed_array(texts, dims).tolist()

    def embed_array(self, texts: list[str], dims: int):
        n = len(texts)
        per_doc: list[int] = []
        wids: list[int] = []
        tfs: list[int] = []
        with self._lock:
            vocab_get = self._vocab.get
            for text in texts:
                counts = Counter(words(text))
                ids = [vocab_get(w, -1) for w in counts]
                if -1 in ids:
                    ids = [i if i >= 0 else self._word_id(w) for i, w in zip(ids, counts, strict=True)]
                per_doc.append(len(ids))
                wids.extend(ids)
                tfs.extend(counts.values())
            all_start = np.frombuffer(self._start, dtype=np.int64)
            all_len = np.frombuffer(self._len, dtype=np.int64)
            all_hash = np.frombuffer(self._hash, dtype=np.int64)
            all_val = np.frombuffer(self._val, dtype=np.float64)
            if wids:
                ids = np.asarray(wids, dtype=np.int64)
                lens = all_len[ids]
                starts = all_start[ids]
                total = int(lens.sum())
                offsets = np.cumsum(lens) - lens
                pos = np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lens)
                rows = np.repeat(np.arange(n, dtype=np.int64) * dims, per_doc)
                flat = np.repeat(rows, lens) + all_hash[pos] % dims
                scales = 1.0 + np.log(np.asarray(tfs, dtype=np.float64))  # sublinear tf
                weights = all_val[pos] * np.repeat(scales, lens)
                out = np.bincount(flat, weights=weights, minlength=n * dims)
            else:
                out = np.zeros(n * dims)
            # The frombuffer views pin the arrays' buffers: while one exists, another thread appending a
            # new word gets BufferError. Drop them before the lock is released.
            del all_start, all_len, all_hash, all_val
        mat = out.reshape(n, dims).astype(np.float32)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        if empty.any():  # an empty text still gets a valid unit vector
            mat[empty, 0] = 1.0
            norms[empty] = 1.0
        return mat / norms

    def _embed_py(self, text: str, dims: int) -> list[float]:
        vec = [0.0] * dims
        for word, tf in Counter(words(text)).items():
            scale = 1.0 + math.log(tf)
            for h, v in self._word_features(word):
                vec[(h & 0x7FFFFFFF) % dims] += (v if (h >> 31) & 1 else -v) * scale
        norm = math.sqrt(sum(v * v for v in vec))
        if norm == 0:
            vec[0], norm = 1.0, 1.0
        return [v / norm for v in vec]


# BM25's saturation and length normalisation against fixed constants (not the request's average length).
BM25_K1 = 1.2
BM25_B = 0.75
REFERENCE_TERMS = 100  # content words (stopwords dropped) of a typical passage


def bm25_scores(query: str, documents: list[str], k1: float = BM25_K1, b: float = BM25_B) -> list[float]:
    """BM25 of each document for `query`, each (query, document) pair scored on its own, as a provider's
    cross-encoder does: term weights from a fixed English background (genapi.local.background), length
    normalised against REFERENCE_TERMS, so a document's score does not depend on what else is sent with it.
    The sum is scaled by the share of the query's weight the document covers (coverage matters more than
    repetition for relevance)."""
    from genapi.local.background import idf

    q = set(terms(query))
    if not q:
        return [0.0] * len(documents)
    weights = {t: max(idf(t), 0.1) for t in q}
    query_weight = sum(weights.values())
    scores = []
    for document in documents:
        d = terms(document)
        tf = Counter(t for t in d if t in q)
        norm = k1 * (1 - b + b * len(d) / REFERENCE_TERMS)
        s = sum(weights[t] * f * (k1 + 1) / (f + norm) for t, f in tf.items())
        covered = sum(weights[t] for t in tf) / query_weight
        scores.append(s * (0.5 + 0.5 * covered))
    return scores


def squash(score: float, k: float = 10.0) -> float:
    """A BM25 sum to 0..1, like a reranker's relevance score; k so that a long query matching well
    (sums of 30-60) still gets distinct scores at the 6 decimals the stand-in answers with."""
    return 1.0 - math.exp(-score / k)
