import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _fast_passwords_and_clean_cache(request, settings):
    # PBKDF2 at production cost dominates these tests; the hasher is not what they check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Login counters and throttles live in the cache; each test starts from zero. The cache may be the
    # database cache, so only tests with database access touch it (and their rows roll back anyway).
    uses_db = bool(request.node.get_closest_marker("django_db")) or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if uses_db:
        cache.clear()
    yield
    if uses_db:
        cache.clear()
