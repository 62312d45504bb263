"""What `make run` keeps in the data folder so every process on it acts on the same service.

- `secret_key`: generated once, on the first `make run`; settings use it whenever DJANGO_SECRET_KEY is
  unset. Only `make run` creates it: a production process never invents its own key.
- `run.env`: rewritten by each `make run`: the provider it chose (the local stand-in's URL and model
  when no provider is configured). Settings load it as defaults; real environment variables win.
So `manage.py ingest`, `reembed` or `evaluate` in a second terminal need no variables.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_KEY_FILE = "secret_key"
RUN_ENV_FILE = "run.env"


def secret_key_read(data_dir: Path) -> str:
    try:
        return (data_dir / SECRET_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return ""


def secret_key_ensure(data_dir: Path) -> bool:
    """Create the key file (owner-only) unless it exists; True when this call created it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two `make run`s racing on one folder end with one key, not two.
        fd = os.open(data_dir / SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    return True


def run_env_write(data_dir: Path, values: dict[str, str]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    header = "# Written by `make run` on each start; environment variables override these.\n"
    (data_dir / RUN_ENV_FILE).write_text(header + "".join(f"{k}={v}\n" for k, v in values.items()))
