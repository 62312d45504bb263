# The same per-test set-up as the accounts tests: fast password hashing and a clean cache.
from tests.accounts.conftest import _fast_passwords_and_clean_cache  # noqa: F401
