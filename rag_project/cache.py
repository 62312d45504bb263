"""The database cache with one statement per `set` instead of four.

Django's DatabaseCache counts the whole table (`SELECT COUNT(*)`, to decide whether to cull) on every write,
then reads the key and updates or inserts it in a transaction of its own: four statements and two more round
trips (BEGIN, COMMIT) for each throttle counter an API request writes. Here a `set` is one upsert
(`INSERT ... ON CONFLICT DO UPDATE`, its own implicit transaction), and the table is counted (and culled,
as Django does) on one `set` in `CULL_EVERY` per process, so the table may exceed MAX_ENTRIES by at most that
many rows per process between checks. `add` and `touch`, and non-PostgreSQL databases, keep Django's code.
"""

from __future__ import annotations

import base64
import pickle
from contextlib import nullcontext
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache as DjangoDatabaseCache
from django.db import DatabaseError, connections, router, transaction
from django.utils.timezone import now as tz_now

# How many sets (per process) between two counts of the table; OPTIONS["CULL_EVERY"] overrides.
CULL_EVERY = 100
# Sets since the table was last counted, per table, for the whole process (Django makes a backend instance
# per thread or context, so an instance's own counter would count on each one's first set).
_sets_since_count: dict[str, int] = {}


class DatabaseCache(DjangoDatabaseCache):
    def __init__(self, table, params):
        super().__init__(table, params)
        options = params.get("OPTIONS") or {}
        self._cull_every = max(1, int(options.get("CULL_EVERY", CULL_EVERY)))

    def _cull_due(self) -> bool:
        """True on the process's first set to this table and then on every `CULL_EVERY`th (a race between
        threads only moves a count by a set or two)."""
        sets = _sets_since_count.get(self._table, 0)
        _sets_since_count[self._table] = sets + 1
        return sets % self._cull_every == 0

    def _base_set(self, mode, key, value, timeout=DEFAULT_TIMEOUT):
        db = router.db_for_write(self.cache_model_class)
        connection = connections[db]
        if mode != "set" or connection.vendor != "postgresql":
            return super()._base_set(mode, key, value, timeout)
        timeout = self.get_backend_timeout(timeout)
        quote_name = connection.ops.quote_name
        table = quote_name(self._table)
        if timeout is None:
            expires = datetime.max
        else:
            expires = datetime.fromtimestamp(timeout, tz=UTC if settings.USE_TZ else None)
        expires = connection.ops.adapt_datetimefield_value(expires.replace(microsecond=0))
        encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
        key_col, value_col, expires_col = (quote_name(c) for c in ("cache_key", "value", "expires"))
        with connection.cursor() as cursor:
            if self._cull_due():
                cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - quoted table name
                num = cursor.fetchone()[0]
                if num > self._max_entries:
                    self._cull(db, cursor, tz_now().replace(microsecond=0), num)
            try:
                # Inside a caller's transaction a failure must not break it: a savepoint, as Django's.
                guard = transaction.atomic(using=db) if connection.in_atomic_block else nullcontext()
                with guard:
                    cursor.execute(
                        f"INSERT INTO {table} ({key_col}, {value_col}, {expires_col}) VALUES (%s, %s, %s) "  # noqa: S608
                        f"ON CONFLICT ({key_col}) DO UPDATE SET {value_col} = EXCLUDED.{value_col}, "
                        f"{expires_col} = EXCLUDED.{expires_col}",
                        [key, encoded, expires],
                    )
            except DatabaseError:
                # As Django's: a failed cache write is not an error of the request.
                return False
        return True
