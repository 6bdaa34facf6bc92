"""The ``modelcycle models`` commands, run as a real subprocess on both backends."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio
from _registry_helpers import FEATURES, make_frame

from modelcycle import Workspace
from modelcycle.store import AuditFilter


def _files(tmp_path: Path, model: Any, frame: pd.DataFrame) -> tuple[Path, Path]:
    model_file = tmp_path / "model.skops"
    model_file.write_bytes(sio.dumps(model))
    example = tmp_path / "example.parquet"
    frame[FEATURES].head(50).to_parquet(example)
    return model_file, example


def test_register_list_show_alias_archive(
    cli: Any, workspace: Workspace, tmp_path: Path, frame: pd.DataFrame, pipeline: Any
) -> None:
    model_file, example = _files(tmp_path, pipeline, frame)
    args = ("models", "register", "credit", str(model_file), "--flavor", "skops")
    proc = cli(
        *args,
        "--example",
        str(example),
        "--metric",
        "roc_auc=0.8",
        "--tag",
        "team=risk",
        check=True,
    )
    assert "credit/1" in proc.stdout
    workspace.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(5))
    cli("models", "alias", "set", "credit", "champion", "1", check=True)
    listing = cli("models", "list", check=True).stdout
    for text in ("credit/1", "champion", "credit/2", "roc_auc=0.8"):
        assert text in listing

    shown = json.loads(cli("models", "show", "credit@champion", "--json", check=True).stdout)
    assert shown["model"] == "credit/1"
    assert shown["metrics"] == {"roc_auc": 0.8}
    assert shown["tags"] == {"team": "risk"}
    assert [e["action"] for e in shown["events"]] == [
        "model.version_registered",
        "model.alias_moved",
    ]
    assert [c["name"] for c in shown["signature"]["inputs"]] == FEATURES
    text = cli("models", "show", "credit/1", check=True).stdout
    assert "model.alias_moved" in text
    assert "region" in text

    cli("models", "alias", "delete", "credit", "champion", check=True)
    assert "archived" in cli("models", "archive", "credit/1", check=True).stdout.lower()
    refused = cli("models", "alias", "set", "credit", "champion", "1")
    assert refused.returncode == 4
    assert "archived" in refused.stderr


def test_promote_prints_both_figures_and_refuses_with_exit_code(
    cli: Any,
    workspace: Workspace,
    tmp_path: Path,
    frame: pd.DataFrame,
    pipeline: Any,
    weak_pipeline: Any,
) -> None:
    ref = workspace.datasets.add("holdout", make_frame(n=200, seed=1)).ref
    for model in (weak_pipeline, pipeline, weak_pipeline):
        workspace.registry.register(model, "credit", input_example=frame[FEATURES].head(5))
    first = cli("models", "promote", "credit/1", "--to", "champion", check=True)
    assert "first promotion" in first.stdout
    gate = ("--on", ref, "--target", "label")
    ok = cli("models", "promote", "credit/2", *gate, check=True)
    result = workspace.audit.events(AuditFilter(action="model.promoted"))[-1].payload["gate"]
    for text in (
        "roc_auc",
        "moved from version 1 to 2",
        f"{result['candidate']['score']:.6g}",
        f"{result['champion']['score']:.6g}",
    ):
        assert text in ok.stdout
    no = cli("models", "promote", "credit/3", *gate)
    assert no.returncode == 4
    for text in ("not promoted", "credit/3", "credit/2", "roc_auc"):
        assert text in no.stderr
    assert workspace.registry.get("credit@champion").version == 2
    forced = cli("models", "promote", "credit/3", "--force", "--reason", "hotfix", check=True)
    assert "forced" in forced.stdout
    assert workspace.registry.get("credit@champion").version == 3


def test_pickle_file_needs_trust_and_export_onnx(
    cli: Any, workspace: Workspace, tmp_path: Path, frame: pd.DataFrame, pipeline: Any
) -> None:
    _, example = _files(tmp_path, pipeline, frame)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(pipeline))
    base = (
        "models",
        "register",
        "credit",
        str(pkl),
        "--flavor",
        "pickle",
        "--example",
        str(example),
    )
    refused = cli(*base)
    assert refused.returncode == 2
    assert "--trust" in refused.stderr
    cli(*base, "--trust", check=True)
    assert workspace.registry.get("credit/1").flavor == "pickle"
    # A skops version converts (SDK conversion and its refusals: test_flavors.py).
    workspace.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(20))
    out = cli("models", "export-onnx", "credit/2", check=True).stdout
    assert "credit/3" in out
    assert workspace.registry.get("credit/3").flavor == "onnx"
