"""Querysets compiled to SQL once per shape, and statements prepared once per connection, for the few
queries on every search request's path.

Django compiles a queryset's SQL again each time it runs. For the API key lookup, the readable collections
and the active embedding space, that compiling cost more of the web process's CPU than running the
statements (BENCHMARKS.md, issue 14). These queries are still written as the usual querysets, so each rule
stays in one place. `queryset_compiled` compiles a queryset once per `shape`, built with stand-in ids
(`STAND_IN_USER`, `STAND_IN_KEY`, `STAND_IN_PREFIX`), and `params_bound` puts the request's values in
their place.

`prepared_cursor` goes one step further for the statements a search sends every time (these, the two legs,
the passages and the query log): the server parses and plans a statement's text once per connection, then
only runs it. Django binds parameters in Python and never prepares (so that transaction-mode poolers keep
working); parsing and planning these statements was a tenth of PostgreSQL's CPU per search (BENCHMARKS.md,
issue 14). `RAG_DB_PREPARED_STATEMENTS=0` turns preparing off, for a transaction-mode pooler that does not
track prepared statements (PgBouncer before 1.21).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

# Ids no row has (primary keys are positive): in a compiled statement's parameters they can only stand for
# the user or key the queryset was built for.
STAND_IN_USER = -7_000_001
STAND_IN_KEY = -7_000_002
# An API key prefix no key has (real prefixes are 12 hex digits).
STAND_IN_PREFIX = "stand-in-prefix"

_compiled: dict[Hashable, tuple[str, tuple[Any, ...]]] = {}


def queryset_compiled(shape: Hashable, build: Callable[[], QuerySet]) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of `build()`, compiled on the first call for `shape` only."""
    compiled = _compiled.get(shape)
    if compiled is None:
        compiled = _compiled[shape] = build().query.sql_with_params()
    return compiled


def params_bound(params: Sequence[Any], values: dict[int | str, Any]) -> list[Any]:
    """`params` with each stand-in replaced by the real value (`values`: stand-in -> value)."""
    return [values.get(p, p) if type(p) in (int, str) else p for p in params]


def rows_fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _PreparingCursor(ServerBindingCursor):
    """Django's server-binding cursor, preparing every statement it runs (psycopg keeps each connection's
    prepared statements, keyed by text and parameter types, and reuses them)."""

    def execute(self, query, params=None, *, prepare=True, binary=None):
        # Without the connection's `prepare_threshold` (RAG_DB_PREPARED_STATEMENTS=0) nothing is prepared.
        return super().execute(query, params, prepare=prepare, binary=binary)

    def _convert_query(self, query, params=None):
        # Kept where Django's debug log (connection.queries, as for its own cursors) reads the statement:
        # psycopg leaves it unset for a single server-bound execute.
        self._query = super()._convert_query(query, params)
        return self._query


def prepared_cursor() -> CursorWrapper:
    """A cursor on Django's default connection, as `connection.cursor()` gives (its checks, error
    wrapping, execute wrappers and debug log), whose statements are bound and prepared on the server.
    Parameters then carry types: a placeholder whose type the statement does not fix needs a cast."""
    wrapper = connection.cursor()
    wrapper.cursor.close()
    raw = _PreparingCursor(connection.connection)
    # As Django's own cursors: a time zone other than the connection's needs the cursor's own loader.
    loader = connection.connection.adapters.get_loader(pg_types["timestamptz"].oid, Format.TEXT)
    if getattr(loader, "timezone", None) != connection.timezone:
        register_tzloader(connection.timezone, raw)
    wrapper.cursor = raw
    return wrapper


def instances_from_row(row: Sequence[Any], *models: type[Model]) -> list[Model]:
    """One instance of each model from consecutive columns of `row`, in the order Django selects them
    (every concrete field, the model's then each `select_related` model's), each value converted as the
    ORM would (JSON parsed, and so on)."""
    instances, start = [], 0
    for model in models:
        attnames, columns = _model_columns(model)
        values = list(row[start : start + len(attnames)])
        for i, (column, converters) in enumerate(columns):
            for converter in converters:
                values[i] = converter(values[i], column, connection)
        instances.append(model.from_db(connection.alias, attnames, values))
        start += len(attnames)
    if start != len(row):
        raise ValueError(f"{len(row)} columns, {start} expected for {[m.__name__ for m in models]}")
    return instances


_columns: dict[type[Model], tuple[list[str], list[tuple[Any, list]]]] = {}


def _model_columns(model: type[Model]) -> tuple[list[str], list[tuple[Any, list]]]:
    """The model's attribute names, and each column with its converters (the backend's, then the field's)."""
    if model not in _columns:
        fields = model._meta.concrete_fields
        columns = []
        for field in fields:
            column = field.get_col(model._meta.db_table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            columns.append((column, converters))
        _columns[model] = ([f.attname for f in fields], columns)
    return _columns[model]
