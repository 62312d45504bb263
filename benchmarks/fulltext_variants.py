"""Why full text scores what it scores: nDCG@10 / Recall@100 of full-text ranking variants on a BEIR
collection
already loaded by `manage.py evaluate` (same passages, same qrels), run as SQL against the same tables.

Variants:
- `current`: search.fulltext.fulltext_candidates as shipped (BM25 from the impact-ordered postings).
- `gin_pool`: design (c), a bounded GIN pool on the rarest lexemes, then BM25 over the pooled tsvectors.
- `or_rank_cd`: any word, ts_rank_cd.           - `or_rank`: any word, ts_rank.
- `and_then_or`: passages with all words first, then the any-word list fills up to 100.
- `bm25`: any-word candidates scored by BM25 (k1 0.9, b 0.4, IDF from the collection's passages) in SQL.
- `bm25_pool1000`: the same over the 1,000 best passages by ts_rank only (bounded cost).
- `hybrid_or_rank`, `hybrid_bm25`: reciprocal-rank fusion (k 60) of the active space's vector top 100 with
  `or_rank` / `bm25` (needs the stand-in that embedded the collection: GENAPI_BASE_URL).

    RAG_DATA_DIR=... python -m benchmarks.fulltext_variants --dataset PATH/TO/scifact
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT = 100
K1, B = 0.9, 0.4  # Anserini's BEIR defaults

OR_QUERY = (
    "(SELECT COALESCE(string_agg(quote_literal(lexeme), ' | '), '') "
    "FROM unnest(to_tsvector('english', %s)))::tsquery"
)


def _rows(sql: str, params: list) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def ranked_sql(query: str, collection_id: int, tsquery: str, rank: str) -> list[int]:
    sql = f"""
        WITH q AS (SELECT {tsquery} AS query)
        SELECT c.id FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id CROSS JOIN q
        WHERE c.search_vector @@ q.query AND d.collection_id = %s
        ORDER BY {rank}(c.search_vector, q.query) DESC, c.id LIMIT {LIMIT}
    """  # noqa: S608 - fixed fragments
    return [r[0] for r in _rows(sql, [query, collection_id])]


class Bm25:
    """BM25 over passages, statistics from the collection's tsvectors (lexeme document frequencies)."""

    def __init__(self, collection_id: int):
        self.collection_id = collection_id
        ((self.n, self.avgdl),) = _rows(
            "SELECT count(*), avg(length(c.search_vector)) FROM ingestion_chunk c "
            "JOIN ingestion_document d ON d.id = c.document_id WHERE d.collection_id = %s",
            [collection_id],
        )
        self.avgdl = float(self.avgdl or 1.0)
        self._df: dict[str, int] = {}

    def df(self, lexemes: list[str]) -> dict[str, int]:
        missing = [x for x in lexemes if x not in self._df]
        for lexeme in missing:
            ((n,),) = _rows(
                "SELECT count(*) FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id "
                "WHERE c.search_vector @@ quote_literal(%s)::tsquery AND d.collection_id = %s",
                [lexeme, self.collection_id],
            )
            self._df[lexeme] = n
        return {x: self._df[x] for x in lexemes}

    def search(self, query: str, pool: int | None = None) -> list[int]:
        lexemes = [
            r[0] for r in _rows("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", [query])
        ]
        if not lexemes:
            return []
        df = self.df(lexemes)
        idf = {x: math.log(1 + (self.n - df[x] + 0.5) / (df[x] + 0.5)) for x in lexemes}
        sql = f"""
            WITH q(lexeme, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[])),
            cand AS (
                SELECT c.id, c.search_vector AS v, length(c.search_vector)::float8 AS dl
                FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
                WHERE c.search_vector @@ ({OR_QUERY}) AND d.collection_id = %s
                {{pool_sql}}
            )
            SELECT cand.id,
                   sum(q.idf * t.tf * ({K1} + 1) / (t.tf + {K1} * (1 - {B} + {B} * cand.dl / %s))) AS score
            FROM cand
            CROSS JOIN LATERAL (
                SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1)::float8 AS tf FROM unnest(cand.v) u
            ) t
            JOIN q ON q.lexeme = t.lexeme
            GROUP BY cand.id ORDER BY score DESC, cand.id LIMIT {LIMIT}
        """  # noqa: S608 - fixed fragments and floats
        pool_sql = ""
        if pool:  # BM25 only over the best `pool` passages by ts_rank (bounded work per query)
            pool_sql = f"ORDER BY ts_rank(c.search_vector, ({OR_QUERY})) DESC LIMIT {int(pool)}"
        sql = sql.replace("{pool_sql}", pool_sql)
        params = [lexemes, [idf[x] for x in lexemes], query, self.collection_id]
        params += [query] if pool else []
        params += [self.avgdl]
        return [r[0] for r in _rows(sql, params)]


def gin_pool_candidates(query: str, collection_ids: list[int], limit: int, pool: int = 2000) -> list[int]:
    """Design (c): a bounded pool from the GIN index on the rarest query lexemes (rarest first, while
    their passage counts add up to at most `pool`; at least the rarest one), LIMIT `pool`, then BM25 over
    the pooled passages' own tsvectors. Statistics from the same lexeme tables as the shipped leg."""
    from search.fulltext import BM25_B, BM25_K1, filters_sql, lexeme_stats
    from search.types import SearchFilters

    stats = lexeme_stats(query)
    lexemes = sorted(stats.docs, key=lambda x: (stats.docs[x], x))
    if not lexemes:
        return []
    admitted, total = [], 0
    for lexeme in lexemes:
        if admitted and total + stats.docs[lexeme] > pool:
            break
        admitted.append(lexeme)
        total += stats.docs[lexeme]
    where, params = filters_sql(collection_ids, SearchFilters())
    k1, b = float(BM25_K1), float(BM25_B)
    sql = f"""
        WITH q(lexeme, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[])),
        pool AS (
            SELECT c.id, c.search_vector AS v
            FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
            WHERE c.search_vector @@ (
                SELECT string_agg(quote_literal(x), ' | ')::tsquery FROM unnest(%s::text[]) x
            ) AND {where}
            LIMIT %s
        ),
        terms AS (
            SELECT pool.id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf,
                   sum(coalesce(array_length(u.positions, 1), 1)) OVER (PARTITION BY pool.id) AS dl
            FROM pool, unnest(pool.v) u
        )
        SELECT terms.id,
               sum(q.idf * tf * {k1 + 1} / (tf + {k1} * ({1 - b} + {b} * dl / %s::float8))) AS score
        FROM terms JOIN q ON q.lexeme = terms.lexeme
        GROUP BY terms.id ORDER BY score DESC, terms.id LIMIT %s
    """  # noqa: S608 - fixed fragments and floats only
    all_lexemes = sorted(stats.docs)
    params = [all_lexemes, [stats.idf(x) for x in all_lexemes], admitted, *params, int(pool)]
    return [r[0] for r in _rows(sql, [*params, stats.avg_length, int(limit)])]


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_project.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--variants", default="current,or_rank_cd,or_rank,and_then_or,bm25")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="NAME=VALUE: override a search.fulltext constant (BM25_K1, ...); repeatable",
    )
    args = parser.parse_args(argv)
    import django

    django.setup()
    import search.fulltext as selectors

    for assignment in args.set:
        name, value = assignment.split("=", 1)
        current = getattr(selectors, name)
        setattr(selectors, name, type(current)(value))
    from ingestion.models import Chunk, Collection
    from search.evaluation import beir_collection_slug, beir_load, passages_to_documents, run_evaluate
    from search.fulltext import fulltext_candidates
    from search.types import SearchFilters

    ds = beir_load(Path(args.dataset), args.split)
    collection = Collection.objects.get(slug=beir_collection_slug(ds.name))
    to_beir = {
        c.pk: str(c.document.metadata.get("beir_id"))
        for c in Chunk.objects.filter(document__collection=collection).select_related("document")
    }
    bm25 = Bm25(collection.pk)
    and_query = "websearch_to_tsquery('english', %s)"

    def and_then_or(q: str) -> list[int]:
        first = ranked_sql(q, collection.pk, and_query, "ts_rank_cd")
        rest = [c for c in ranked_sql(q, collection.pk, OR_QUERY, "ts_rank_cd") if c not in set(first)]
        return (first + rest)[:LIMIT]

    def hybrid(q: str, text_ranking) -> list[int]:
        from search.fusion import rrf_fuse
        from search.selectors import embedding_space_active, query_embed, vector_candidates

        space = embedding_space_active()
        vec = [
            c
            for c, _ in vector_candidates(
                query_embed(q, space), space, [collection.pk], SearchFilters(), LIMIT
            )
        ]
        return [c for c, _ in rrf_fuse([vec, text_ranking(q)])][:LIMIT]

    variants = {
        "current": lambda q: [c for c, _ in fulltext_candidates(q, [collection.pk], SearchFilters(), LIMIT)],
        "or_rank_cd": lambda q: ranked_sql(q, collection.pk, OR_QUERY, "ts_rank_cd"),
        "or_rank": lambda q: ranked_sql(q, collection.pk, OR_QUERY, "ts_rank"),
        "and_then_or": and_then_or,
        "bm25": bm25.search,
        "gin_pool": lambda q: gin_pool_candidates(q, [collection.pk], LIMIT),
        "bm25_pool1000": lambda q: bm25.search(q, pool=1000),
        "hybrid_or_rank": lambda q: hybrid(q, lambda x: ranked_sql(x, collection.pk, OR_QUERY, "ts_rank")),
        "hybrid_bm25": lambda q: hybrid(q, bm25.search),
        "and_then_or_rank": lambda q: (
            lambda a: (a + [c for c in ranked_sql(q, collection.pk, OR_QUERY, "ts_rank") if c not in set(a)])[
                :LIMIT
            ]
        )(ranked_sql(q, collection.pk, and_query, "ts_rank")),
    }
    print(
        f"{ds.name} {args.split}: {len(ds.queries)} queries, {len(to_beir)} passages in {collection.slug}"
        + (f" ({', '.join(args.set)})" if args.set else "")
    )
    for name in args.variants.split(","):
        fn = variants[name]
        run, took = {}, []
        for qid, text in ds.queries.items():
            t0 = time.perf_counter()
            chunk_ids = fn(text)
            took.append(time.perf_counter() - t0)
            docs = passages_to_documents((to_beir[c], -rank) for rank, c in enumerate(chunk_ids))
            run[qid] = [d for d, _ in docs]
        s = run_evaluate(ds.qrels, run)
        took.sort()
        print(
            f"  {name:12} nDCG@10 {s.ndcg_at_10:.4f}  R@100 {s.recall_at_100:.4f}  MRR@10 {s.mrr_at_10:.4f}"
            f"  p50 {took[len(took) // 2] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
