"""The README's Python example runs as written (in a fresh workspace)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from modelcycle import init_workspace

README = Path(__file__).parents[2] / "README.md"


def test_readme_sdk_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    init_workspace(tmp_path / "proj")[0].close()
    script = blocks[0] + "\nprint('README-OK', run.status, model.version.ref)\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path / "proj",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "README-OK succeeded credit/1" in proc.stdout
