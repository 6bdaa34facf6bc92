"""Around the flavor contract: plug-ins (register_flavor, the modelcycle.flavors entry point),
a missing optional extra, python-model's trust and code hash, and the built-in trainer's
``--model xgboost|lightgbm``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _flavor_cases import build

from modelcycle import Workspace, init_workspace
from modelcycle.errors import InvalidInput, NotReady
from modelcycle.registry import UntrustedModel, get_flavor
from modelcycle.registry.flavors import register_flavor


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("flavor-plugins")
    os.environ.setdefault("MODELCYCLE_ACTOR", "tester")
    workspace, _ = init_workspace(root / "ws", db_url=f"sqlite:///{root / 'meta.db'}")
    try:
        yield workspace
    finally:
        workspace.close()


PLUGIN = """
import numpy as np
from modelcycle.registry.flavors.base import ModelFlavor


class Constant:
    def __init__(self, value):
        self.value = value


class ConstantFlavor(ModelFlavor):
    name = "constant"
    file_extension = "txt"

    def detect(self, model):
        return isinstance(model, Constant)

    def save(self, model):
        return str(model.value).encode()

    def load(self, data, *, trust=False):
        return Constant(float(data.decode()))

    def requirements(self, model):
        return []

    def predict_input(self, model, x):
        return np.full(len(x), model.value)
"""


def test_an_entry_point_adds_a_flavor(tmp_path: Path) -> None:
    """A package declaring a ``modelcycle.flavors`` entry point: no call needed."""
    (tmp_path / "constant_flavor.py").write_text(PLUGIN)
    dist = tmp_path / "constant_flavor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: constant-flavor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[modelcycle.flavors]\nconstant = constant_flavor:ConstantFlavor\n"
    )
    script = textwrap.dedent(
        """
        import numpy as np
        import pyarrow as pa
        from modelcycle.registry import detect_flavor, get_flavor
        from constant_flavor import Constant
        flavor = detect_flavor(Constant(2.5))
        model = get_flavor("constant").load(flavor.save(Constant(2.5)))
        print(flavor.name, flavor.predict(model, pa.table({"a": [1.0, 2.0]})).tolist())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "MODELCYCLE_ACTOR": "tester"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["constant", "[2.5,", "2.5]"]


def test_register_flavor_refuses_a_taken_name_and_a_non_flavor() -> None:
    with pytest.raises(InvalidInput, match="exists already"):
        register_flavor(type(get_flavor("xgboost")))
    with pytest.raises(InvalidInput, match="ModelFlavor"):
        register_flavor(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="xgboost, lightgbm"):
        get_flavor("nope")


def test_a_missing_extra_says_which_to_install(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = build("xgboost-booster-regression", tmp_path)
    mv = ws.registry.register(case.model, "no-extra", input_example=case.table)
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if not installed
    with pytest.raises(NotReady, match=r"pip install 'modelcycle\[xgboost\]'"):
        ws.registry.load(mv.ref)


def test_python_model_needs_trust_and_records_its_code_hash(ws: Workspace, tmp_path: Path) -> None:
    case = build("python-model", tmp_path)
    with pytest.raises(UntrustedModel, match="runs the model's Python code"):
        ws.registry.register(case.model, "py", input_example=case.table)
    assert [v.name for v in ws.registry.list()].count("py") == 0  # nothing half-made
    mv = ws.registry.register(case.model, "py", input_example=case.table, trust=True)
    source = Path(sys.modules[case.model.model_class.__module__].__file__ or "").read_bytes()
    assert mv.tags["code_sha256"] == hashlib.sha256(source).hexdigest()
    assert (mv.signature["task"], mv.signature["classes"]) == ("binary_classification", [0, 1])
    with pytest.raises(UntrustedModel):
        ws.registry.load(mv.ref)
    loaded = ws.registry.load(mv.ref, trust=True)
    assert loaded.model.code_sha256 == mv.tags["code_sha256"]
    frame = case.table.to_pandas()
    expected = (
        frame.income > json.loads(Path(case.model.artifacts["config"]).read_text())["threshold"]
    )
    np.testing.assert_array_equal(loaded.predict(case.table), expected.astype(int).to_numpy())


@pytest.fixture(scope="module")
def credit(ws: Workspace) -> str:
    from modelcycle.datasets import make_credit

    return ws.datasets.add("credit", make_credit(400, seed=0)).ref


@pytest.mark.parametrize("algorithm", ["xgboost", "lightgbm"])
def test_trainer_trains_and_registers_in_the_library_flavor(
    ws: Workspace, credit: str, algorithm: str
) -> None:
    run = ws.pipelines.train(
        credit,
        target="default",
        model=algorithm,
        register=f"credit-{algorithm}",
        params={"n_estimators": 10},
    )
    assert run.status == "succeeded"
    mv = ws.registry.get(f"credit-{algorithm}@challenger")
    assert mv.flavor == algorithm
    assert mv.signature["task"] == "binary_classification"
    assert "roc_auc" in mv.metrics
    name, version = mv.tags["holdout"].split("@")
    holdout = ws.datasets.get(name, int(version))
    loaded = ws.registry.load(mv.ref)
    proba = loaded.predict_proba(holdout.drop_columns(["default"]))
    assert proba.shape == (holdout.num_rows, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
