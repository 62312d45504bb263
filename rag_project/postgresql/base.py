"""Django's PostgreSQL backend, with the connection health check skipped on a connection that just answered.

With `CONN_HEALTH_CHECKS` on, Django sends `SELECT 1` before the first statement of every request on a kept
connection, so that a connection the server closed (a restart, an idle timeout) is replaced instead of
failing the request. A search pays it twice (the request's connection and the vector leg's), each a round
trip that waits for a PostgreSQL process on a busy machine: py-spy put 12 % of a web worker's samples there at
8 concurrent searches (BENCHMARKS.md, issue 14, "Session 7"). Here a connection whose last statement
succeeded less than `RAG_DB_HEALTH_CHECK_AFTER_SECONDS` ago is taken as alive; one idle for longer is checked
as before. Being wrong costs what Django accepts with the check off: one failed request on that connection,
after which Django replaces it.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base


def _stamp_success(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    context["connection"].last_success = time.monotonic()
    return result


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_success: float | None = None  # monotonic time of the last statement that succeeded
        self.execute_wrappers.append(_stamp_success)

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        self.last_success = time.monotonic()
        return connection

    def answered_recently(self) -> bool:
        fresh_for = float(settings.RAG_DB_HEALTH_CHECK_AFTER_SECONDS)
        return (
            fresh_for > 0
            and self.connection is not None
            and not self.errors_occurred
            and self.last_success is not None
            and time.monotonic() - self.last_success < fresh_for
        )

    def close_if_health_check_failed(self) -> None:
        if self.health_check_enabled and not self.health_check_done and self.answered_recently():
            self.health_check_done = True
        super().close_if_health_check_failed()
