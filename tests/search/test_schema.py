"""The OpenAPI schema is valid and describes the search endpoints; a bounded schemathesis run against a
live server (real database, stand-in provider, a valid key) finds no server error."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from tests.factories import ApiKeyFactory


@pytest.mark.django_db
def test_openapi_schema_validates_and_documents_search(tmp_path, capsys):
    target = tmp_path / "schema.yaml"
    # --validate checks the document against the OpenAPI 3 meta-schema (raises when invalid).
    call_command("spectacular", "--validate", "--file", str(target), stdout=io.StringIO())
    # Generator warnings about the search views (the whole project's run --fail-on-warn in CI).
    warnings = [line for line in capsys.readouterr().err.splitlines() if "Warning" in line or "Error" in line]
    assert [w for w in warnings if "search/apis.py" in w or "search.apis" in w] == []
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    assert set(paths["/api/search"]) == {"post"}
    assert set(paths["/api/ask"]) == {"post"}
    assert "/api/documents/{document_id}/chunks/{chunk_id}" in paths
    ask = paths["/api/ask"]["post"]
    assert set(ask["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    for code in ("400", "401", "403", "429", "502"):
        assert code in ask["responses"]
    props = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert props["top_k"]["maximum"] == 100 and props["top_k"]["minimum"] == 1
    assert set(schema["components"]["schemas"]["Citation"]["required"]) == {
        "n", "document_id", "chunk_id", "title", "page", "char_start", "char_end", "snippet", "url",
        "supported", "score",
    }  # fmt: skip
    assert "citation_checks" in schema["components"]["schemas"]["AskResponse"]["required"]


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(live_server, kb, genapi, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if st is None:
        pytest.skip("schemathesis is not installed (pip install 'schemathesis>=4,<5')")
    caller = ApiKeyFactory()
    command = [
        st, "run", f"{live_server.url}/api/schema/",
        "--url", live_server.url,
        "-H", f"Authorization: Bearer {caller.raw_key}",
        "--include-path-regex", r"^/api/(search|ask|documents/\{document_id\}/chunks/\{chunk_id\})$",
        "--checks", "not_a_server_error",
        "--phases", "examples,fuzzing",
        "--max-examples", "20",
        "--workers", "1",
        "--seed", "20240601",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--no-color",
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
