"""The demo's evidence step: every verify command it prints works when pasted into a shell,
from a folder that is not the workspace (the script written by the installed package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle import init_workspace
from modelcycle.interfaces.demo_evidence import sign_evidence


def test_the_printed_verify_commands_work_when_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS"):
        monkeypatch.delenv(var, raising=False)
    ws, _ = init_workspace(tmp_path / "ws")
    try:
        x = pd.DataFrame({"age": np.arange(60) % 50 + 18, "income": np.linspace(20.0, 80.0, 60)})
        model = LogisticRegression().fit(x, (x["age"] > 40).astype(np.int64))
        ws.registry.register(model, "credit", input_example=x.head(5))
        ws.registry.set_alias("credit", "champion", 1)
        said: list[str] = []
        sign_evidence(ws, said.append)
    finally:
        ws.close()
    commands = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert any("verify them anywhere" in s for s in said)
    assert [c.split()[0] for c in commands] == ["modelcycle", "python3", "modelcycle", "cd"]
    script = tmp_path / "ws" / "evidence" / "verify_audit_export.py"
    assert f"python3 {script} " in commands[1]  # written from the package, not a repo path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=elsewhere, env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
        first = done.stdout.strip().splitlines()[0]
        assert first.startswith("OK") or first.startswith("# Model card"), (command, first)
