"""Round trips for each flavor, the trust model, and tampered blobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _registry_helpers import FEATURES, NUMERIC
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from modelcycle import IntegrityError, Workspace
from modelcycle.errors import Conflict, InvalidInput
from modelcycle.registry import SignatureMismatch, UntrustedModel


class MajorityModel(ClassifierMixin, BaseEstimator):
    """A custom class: skops does not know it, and neither does our trusted list."""

    def fit(self, x: Any, y: Any) -> MajorityModel:
        values, counts = np.unique(y, return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        return self

    def predict(self, x: Any) -> np.ndarray:
        return np.full(len(x), self.majority_)

    def predict_proba(self, x: Any) -> np.ndarray:
        proba = (self.classes_ == self.majority_).astype(float)
        return np.tile(proba, (len(x), 1))


def _blob_path(ws: Workspace, sha256: str) -> Path:
    return Path(ws.settings.artifacts_url) / "objects" / sha256[:2] / sha256


def test_skops_hist_gradient_boosting_round_trip(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    mv = workspace.registry.register(
        hgb, "churn", input_example=frame[NUMERIC].head(20), metrics={"roc_auc": 0.91}
    )
    assert (mv.name, mv.version, mv.flavor) == ("churn", 1, "skops")
    assert mv.signature["task"] == "binary_classification"
    assert mv.signature["classes"] == [0, 1]
    assert "scikit-learn==1.9.1" in mv.requirements
    loaded = workspace.registry.load("churn/1")
    # The TreePredictor inside is trusted through our list, not by the user naming it.
    np.testing.assert_array_equal(loaded.predict(frame[NUMERIC]), hgb.predict(frame[NUMERIC]))
    np.testing.assert_allclose(
        loaded.predict_proba(pa.Table.from_pandas(frame[NUMERIC])),
        hgb.predict_proba(frame[NUMERIC]),
    )
    assert loaded.version.ref == "churn/1"
    assert loaded.signature.input_names == NUMERIC


def test_skops_column_transformer_pipeline_round_trip(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    workspace.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(50))
    loaded = workspace.registry.load("credit@latest")
    assert [c.type for c in loaded.signature.inputs] == ["double", "int64", "string"]
    # Columns in another order are put back in the signature's order before predicting.
    shuffled = frame[["region", "income", "age"]]
    np.testing.assert_allclose(
        loaded.predict_proba(shuffled), pipeline.predict_proba(frame[FEATURES])
    )
    with pytest.raises(SignatureMismatch) as info:
        loaded.predict(frame[["income"]].assign(age=1.5))
    assert {p.column for p in info.value.problems} == {"age", "region"}


def test_numpy_model_gets_generated_column_names(workspace: Workspace, frame: pd.DataFrame) -> None:
    matrix = frame[NUMERIC].to_numpy(dtype=float)
    model = LogisticRegression().fit(matrix, frame.label)
    mv = workspace.registry.register(model, "plain", input_example=matrix[:10])
    assert [c["name"] for c in mv.signature["inputs"]] == ["f0", "f1"]
    loaded = workspace.registry.load("plain/1")
    np.testing.assert_array_equal(
        loaded.predict(pa.table({"f0": matrix[:, 0], "f1": matrix[:, 1]})), model.predict(matrix)
    )


def test_untrusted_skops_type_is_refused_and_named(
    workspace: Workspace, frame: pd.DataFrame
) -> None:
    model = MajorityModel().fit(frame[NUMERIC], frame.label)
    with pytest.raises(UntrustedModel, match="MajorityModel") as info:
        workspace.registry.register(model, "custom", input_example=frame[NUMERIC].head(5))
    assert any(t.endswith("MajorityModel") for t in info.value.types)
    assert workspace.registry.list() == []  # nothing half-registered
    # The owner may vouch for it; loaders must vouch again.
    mv = workspace.registry.register(
        model, "custom", input_example=frame[NUMERIC].head(5), trust=True
    )
    with pytest.raises(UntrustedModel, match="MajorityModel"):
        workspace.registry.load(mv.ref)
    loaded = workspace.registry.load(mv.ref, trust=True)
    assert (loaded.predict(frame[NUMERIC].head(3)) == model.majority_).all()


def test_pickle_needs_trust_to_store_and_to_load(workspace: Workspace, frame: pd.DataFrame) -> None:
    model = MajorityModel().fit(frame[NUMERIC], frame.label)
    with pytest.raises(UntrustedModel, match="trust=True"):
        workspace.registry.register(
            model, "pickled", input_example=frame[NUMERIC].head(5), flavor="pickle"
        )
    mv = workspace.registry.register(
        model, "pickled", input_example=frame[NUMERIC].head(5), flavor="pickle", trust=True
    )
    assert mv.flavor == "pickle"
    with pytest.raises(UntrustedModel, match="--trust"):
        workspace.registry.load("pickled/1")
    loaded = workspace.registry.load("pickled/1", trust=True)
    np.testing.assert_array_equal(loaded.predict(frame[NUMERIC]), model.predict(frame[NUMERIC]))


def test_object_no_flavor_stores_is_refused(workspace: Workspace) -> None:
    with pytest.raises(InvalidInput, match="flavor='pickle'"):
        workspace.registry.register(object(), "thing", input_example=np.zeros((2, 2)))


def test_tampered_blob_is_refused(workspace: Workspace, frame: pd.DataFrame, pipeline: Any) -> None:
    mv = workspace.registry.register(pipeline, "credit", input_example=frame[FEATURES].head(5))
    path = _blob_path(workspace, mv.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=mv.sha256):
        workspace.registry.load("credit/1")


def test_export_onnx_pipeline_agrees_and_keeps_lineage(
    workspace: Workspace, frame: pd.DataFrame, pipeline: Any
) -> None:
    source = workspace.registry.register(
        pipeline,
        "credit",
        input_example=frame[FEATURES],
        metrics={"roc_auc": 0.8},
        run_id="run-7",
        tags={"team": "risk"},
    )
    mv = workspace.registry.export_onnx(source.ref)
    assert (mv.version, mv.flavor) == (2, "onnx")
    assert mv.tags == {"team": "risk", "converted_from": "credit/1"}
    assert (mv.run_id, mv.metrics, mv.signature) == (
        source.run_id,
        source.metrics,
        source.signature,
    )
    assert any(r.startswith("onnxruntime==") for r in mv.requirements)
    loaded = workspace.registry.load("credit/2")
    np.testing.assert_allclose(
        loaded.predict_proba(frame[FEATURES]), pipeline.predict_proba(frame[FEATURES]), atol=1e-4
    )
    np.testing.assert_array_equal(
        loaded.predict(frame[FEATURES]), pipeline.predict(frame[FEATURES])
    )


def test_export_onnx_regressor(workspace: Workspace, frame: pd.DataFrame, ridge: Any) -> None:
    workspace.registry.register(ridge, "spend", input_example=frame[NUMERIC])
    mv = workspace.registry.export_onnx("spend/1")
    preds = workspace.registry.load(mv.ref).predict(frame[NUMERIC])
    np.testing.assert_allclose(preds, ridge.predict(frame[NUMERIC]), rtol=1e-4)


def test_export_onnx_refuses_non_sklearn(workspace: Workspace, frame: pd.DataFrame) -> None:
    model = MajorityModel().fit(frame[NUMERIC], frame.label)
    workspace.registry.register(
        model, "pickled", input_example=frame[NUMERIC].head(5), flavor="pickle", trust=True
    )
    with pytest.raises(InvalidInput, match="only scikit-learn"):
        workspace.registry.export_onnx("pickled/1")


def test_archived_version_cannot_be_loaded(
    workspace: Workspace, frame: pd.DataFrame, hgb: Any
) -> None:
    workspace.registry.register(hgb, "churn", input_example=frame[NUMERIC].head(5))
    workspace.registry.archive("churn/1")
    with pytest.raises(Conflict, match="archived"):
        workspace.registry.load("churn/1")


def test_onnx_model_registered_directly(
    workspace: Workspace, frame: pd.DataFrame, tmp_path: Path
) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    matrix = frame[NUMERIC].to_numpy(dtype=np.float32)
    model = LogisticRegression().fit(matrix, frame.label)
    proto = to_onnx(
        model, initial_types=[("input", FloatTensorType([None, 2]))], options={"zipmap": False}
    )
    example = frame[NUMERIC].head(20)  # double and int64 columns, fed as one float tensor
    mv = workspace.registry.register(proto, "onnx-direct", input_example=example)
    assert mv.flavor == "onnx"
    assert (mv.signature["task"], mv.signature["classes"]) == ("binary_classification", [0, 1])
    loaded = workspace.registry.load(mv.ref)
    np.testing.assert_allclose(
        loaded.predict_proba(frame[NUMERIC]), model.predict_proba(matrix), atol=1e-5
    )
    # The same file through register_file (what `models register --flavor onnx` uses).
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    again = workspace.registry.register_file(
        str(path), "onnx-direct", flavor="onnx", input_example=example
    )
    assert (again.version, again.sha256) == (2, mv.sha256)
