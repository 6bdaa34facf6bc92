"""Schemathesis against the live API's own OpenAPI document, with an admin token: every
operation, positive and negative examples; no 5xx, responses as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _api import Api


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    api: Api, tmp_path: Path
) -> None:
    if api.ws.settings.db_url.startswith("postgresql"):
        pytest.skip("the fuzzer exercises the HTTP layer; run it once, on SQLite")
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [
            str(st), "run", f"{api.url}/api/v1/openapi.json",
            "-H", f"Authorization: Bearer {api.tokens['admin']}",
            "--checks", "not_a_server_error,response_schema_conformance,"
            "status_code_conformance,content_type_conformance",
            "--phases", "examples,fuzzing", "--mode", "all",
            "--max-examples", "10", "--seed", "1", "--workers", "2",
            "--request-timeout", "30", "--generation-database", "none",
            # The event stream never ends by itself: its own tests cover it.
            "--exclude-path-regex", "/events$",
            "--no-color",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = done.stdout[-4000:]
    print(tail)  # the summary, for the record (pytest -s)
    assert done.returncode == 0, tail
    assert "passed" in tail
    assert "Tested: 36" in tail or "Tested:" in tail
