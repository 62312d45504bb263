"""Test settings: the production settings module, with the test environment set before it loads.

pytest-django imports settings before any conftest runs, so the environment is prepared here.
Subprocesses started by tests (workers, servers) inherit this environment.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# Each run gets its own queue so a message left by an earlier run is never consumed by this one.
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = f"citable-test-{os.getpid()}"
# The local stand-in's small hash model keeps vectors at 384 dimensions: fast and realistic enough.
os.environ.setdefault("GENAPI_EMBEDDING_MODEL", "all-minilm-l6-v2")
os.environ.setdefault("GENAPI_MAX_RETRIES", "4")
# One budget per process unless a test shares one on purpose (tests/genapi/test_shared_budget.py), so a
# test session never shares provider budget state with another session or with a developer's deployment.
os.environ.setdefault("GENAPI_BUDGET_URL", "process")
os.environ.setdefault("GENAPI_BUDGET_PREFIX", f"citable-test-{os.getpid()}")
# Metrics of this session only (its workers inherit the folder): counters compared before and after a
# request must not move with another session's traffic on the same data folder.
if not os.environ.get("RAG_METRICS_DIR"):
    os.environ["RAG_METRICS_DIR"] = tempfile.mkdtemp(prefix="citable-test-metrics-")
    atexit.register(shutil.rmtree, os.environ["RAG_METRICS_DIR"], ignore_errors=True)
# Never let a test reach a real provider, even with a key in the developer's shell.
os.environ.pop("SCW_SECRET_KEY", None)
os.environ.pop("SCW_PROJECT_ID", None)

from rag_project.settings import *  # noqa: E402,F403

# Rerank scores go to the cache every test's transaction rolls back (the database cache; Redis on the
# production path), not the process memory of production's default: a search one test made must not be
# answered from the cache in another.
CACHES["rerank"] = CACHES["default"]  # noqa: F405
# A search's vector-leg thread closes its database connection after each search: a kept one would block
# dropping the test database at the end of the session.
RAG_SEARCH_LEG_CONNECTION_KEEP = False
# Each request's provider usage is in ProviderUsageDay when the request returns (tests read it).
RAG_PROVIDER_USAGE_FLUSH_SECONDS = 0.0
