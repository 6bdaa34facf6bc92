"""``modelcycle demo`` (what ``make demo`` runs): the whole loop, end to end, in a subprocess."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from _cli import run_cli
from _servers import modelcycle_server
from modelcycle import Workspace


def test_the_demo_runs_the_loop_and_its_audit_chain_verifies(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    proc = run_cli(
        "demo", "--workspace", str(root), "--rows", "4000", "--every", "2s", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for step in (
        "credit@1 versioned",
        "credit/1 registered",
        "deployed locally",
        "v2 infer -> version 1",
        "MLflow /invocations -> version 1",
        "batch job",
        "drift detected on credit/1",
        "drift-report.html",
        "credit/2 trained on credit@2",
        "model.promoted",
        "now answers with version 2",
        "audit chain verified",
    ):
        assert step in out, step
    with Workspace(root) as ws:
        assert ws.registry.get("credit@champion").version == 2
        assert ws.audit.verify().ok
        failed = [j for j in ws.automations.queue.list() if j.state in ("dead", "failed")]
        assert failed == []
        drift = [e for e in ws.audit.events() if e.action == "drift.detected"]
        assert drift, "the schedule never detected the drift"
    assert "<html" in (root / "drift-report.html").read_text()[:2000].lower()

    # The demo ends with the way into the console: `modelcycle server` and a reader token.
    assert "modelcycle server" in out
    tokens = re.findall(r"reader token\s+(mc_[A-Za-z0-9_-]+)", out)
    assert len(tokens) == 1, out[-600:]
    _server_lists_the_demo_models(root, tokens[0])


def _server_lists_the_demo_models(root: Path, token: str) -> None:
    """What the demo's last line says to do: `modelcycle server`, then list the models."""
    with modelcycle_server(root) as base:
        r = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        (credit,) = [m for m in r.json()["items"] if m["name"] == "credit"]
        assert credit["aliases"]["champion"] == 2
