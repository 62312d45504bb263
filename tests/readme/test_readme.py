"""The README is the contract: its commands work, as written, on a fresh data folder.

The service is started the way `make run` starts it (`python -m rag_project.run`, which is all `make run`
does once the virtualenv is installed) with none of the project's variables set. Then every shell and
Python block of the README's "Using it" section runs, in order, in one shell session: the "second
terminal". Two things differ from a person typing them, both so that tests can run beside a developer's
own `make run`: the data folder is a temporary one (RAG_DATA_DIR) and the web port is a free one
(`127.0.0.1:8000` in the blocks becomes that port). `curl` gets `--fail-with-body`, so an HTTP error fails
the block as it would fail the reader. Then Ctrl-C must stop every process, the database included, and a
second start on the same data folder must pick up where the first left off.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("DJANGO_", "DATABASE_", "CELERY_", "GENAPI_", "SCW_", "RAG_")
README_PORT = "127.0.0.1:8000"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def readme_section(title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block in "Using it", in order."""
    return re.findall(r"^```(sh|python)\n(.*?)^```$", readme_section("Using it"), re.S | re.M)


def test_the_readme_blocks_cover_the_documented_commands():
    """Guards the end-to-end test below against running an empty or shrunken README."""
    blocks = readme_blocks()
    shell = "\n".join(code for lang, code in blocks if lang == "sh")
    python = "\n".join(code for lang, code in blocks if lang == "python")
    commands = ("create_api_key", "manage.py ingest", "/api/documents/bulk", "/api/ask", "reembed")
    commands += ("evaluate",)
    for command in commands:
        assert command in shell, f"the README's 'Using it' blocks lost `{command}`"
    assert "OpenAI(" in python
    assert 'call_tool("ask"' in python and "/mcp" in python
    # The key the later commands use comes from a README command, not from the test.
    assert re.search(r"^export KEY=\$\(.*create_api_key.*\)", shell, re.M)
    # Every path the blocks name ships with the project.
    for path in re.findall(r"manage\.py (?:ingest|evaluate --dataset) (\S+)", shell):
        assert (REPO_ROOT / path).is_dir(), f"README names {path}, which the repository does not contain"


def test_nothing_points_outside_the_repository():
    """A user's clone has no shared folder beside it: README, docs and code must not send them there."""
    # Not spelled out, or this file would match itself; the last one catches a pathlib join.
    needles = ("/".join(("..", "shared")), "/".join(("", "work", "shared")), '/ "' + 'shared"')
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(files) > 50
    offenders = []
    for name in files:
        path = REPO_ROOT / name
        if name == "genapi/genapi-openapi.yaml" or not path.is_file() or path.suffix in {".jsonl", ".tsv"}:
            continue
        text = path.read_text(errors="ignore")
        if any(needle in text for needle in needles):
            offenders.append(name)
    assert not offenders, f"these files point at a folder users do not have: {offenders}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A new user's shell: none of the project's variables, only the test's isolation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    for name in ("HOST", "PORT", "WEB_CONCURRENCY", "CELERY_CONCURRENCY", "KEY"):
        env.pop(name, None)
    env["RAG_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


class Service:
    """`make run` as a child process, its output in a file."""

    def __init__(self, data_dir: Path, log_path: Path, port: int, standin_port: int):
        self.log_path = log_path
        env = clean_env(
            data_dir,
            PORT=str(port),
            GENAPI_LOCAL_PORT=str(standin_port),
            # Two cores shared with the rest of the suite: one web and one worker process are enough.
            WEB_CONCURRENCY="1",
            CELERY_CONCURRENCY="1",
            PYTHONUNBUFFERED="1",
        )
        self.log_file = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rag_project.run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_up(self, timeout: float = 400) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Citable is up at" in self.log():
                return
            if self.process.poll() is not None:
                pytest.fail(f"make run exited with {self.process.returncode}:\n{self.log()[-6000:]}")
            time.sleep(1)
        self.interrupt()
        pytest.fail(f"make run was not up after {timeout}s:\n{self.log()[-6000:]}")

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C, as a person in the terminal would press it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            pytest.fail(f"make run did not stop within {timeout}s of Ctrl-C:\n{self.log()[-6000:]}")
        finally:
            self.log_file.close()


def processes_using(data_dir: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:200]}")
    return found


def port_is_free(port: int) -> bool:
    """Nothing listens there (closed connections may linger in TIME_WAIT; make run binds the same way)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def run_readme_blocks(data_dir: Path, port: int, transcript: Path) -> str:
    lines = [
        "set -euo pipefail",
        # A failed request fails the block, as it fails the reader; each response ends its own line.
        'curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }',
    ]
    for n, (lang, code) in enumerate(readme_blocks(), start=1):
        code = code.replace(README_PORT, f"127.0.0.1:{port}")
        lines.append(f"echo '### README block {n} ({lang})'")
        if lang == "sh":
            lines.append(code)
        else:
            lines.append(f".venv/bin/python - <<'README_PYTHON'\n{code}README_PYTHON")
    script = "\n".join(lines) + "\necho '### README blocks done'\n"
    transcript.write_text(script)
    result = subprocess.run(
        ["bash", str(transcript)],
        cwd=REPO_ROOT,
        env=clean_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1200,
    )
    output = result.stdout
    transcript.with_suffix(".out").write_text(output)  # kept under the test's tmp_path for a failure
    if result.returncode != 0 or "### README blocks done" not in output:
        failed = re.findall(r"### README block \d+ \(\w+\)", output)
        pytest.fail(
            f"{failed[-1] if failed else 'the README blocks'} failed (exit {result.returncode}):\n"
            f"{output[-8000:]}"
        )
    return output


def test_every_readme_command_works_on_a_fresh_data_folder(tmp_path):
    data_dir = tmp_path / "data"
    port, standin_port = free_port(), free_port()

    first = Service(data_dir, tmp_path / "run-1.log", port, standin_port)
    try:
        first.wait_up()
        assert "created the admin account" in first.log()
        output = run_readme_blocks(data_dir, port, tmp_path / "readme.sh")
    finally:
        code = first.interrupt()
    assert code == 0, first.log()[-4000:]

    # What each block was for actually happened (every request already had to succeed with $KEY).
    assert '"citations"' in output and '"answer"' in output, output[-3000:]
    assert '"results"' in output and re.search(r"nDCG@10\s+\d\.\d{4}", output), output[-3000:]
    python_output = output.split("### README block ")[-1].split("\n", 1)[1]
    assert python_output.replace("### README blocks done", "").strip(), "the OpenAI client printed nothing"

    # Ctrl-C stopped everything make run started, the embedded PostgreSQL included.
    assert "stopping the embedded PostgreSQL" in first.log()
    deadline = time.monotonic() + 30
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_using(data_dir), processes_using(data_dir)
    assert port_is_free(port) and port_is_free(standin_port)
    assert not (data_dir / "postgres" / "postmaster.pid").exists()

    # A second run on the same folder picks up where the first left off: same key, same data.
    key_before = (data_dir / "secret_key").read_text()
    second = Service(data_dir, tmp_path / "run-2.log", port, standin_port)
    try:
        second.wait_up()
        assert "created the admin account" not in second.log()
        assert "generated a secret key" not in second.log()
        counted = subprocess.run(
            [
                ".venv/bin/python",
                "manage.py",
                "shell",
                "-c",
                "from ingestion.models import Document as D; print(D.objects.filter(status='ready').count())",
            ],
            cwd=REPO_ROOT,
            env=clean_env(data_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert counted.returncode == 0, counted.stderr
        # The handbook (3), the bulk document (1) and the evaluation set (400) are still there.
        assert int(counted.stdout.strip().splitlines()[-1]) >= 404
    finally:
        assert second.interrupt() == 0, second.log()[-4000:]
    assert (data_dir / "secret_key").read_text() == key_before
    assert not processes_using(data_dir)
