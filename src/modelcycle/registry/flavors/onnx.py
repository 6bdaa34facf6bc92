"""ONNX models scored with onnxruntime: a fast, code-free format (no Python objects in the file).

Inputs follow the signature: one 2-D tensor holding every column (a model converted from a
numeric matrix), or one ``[N, 1]`` tensor per column named like it (mixed types).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors.base import ModelFlavor, SignatureHints, pinned

__all__ = ["OnnxFlavor"]

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def _column(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    values = np.asarray(table.column(name).to_numpy(zero_copy_only=False))
    if dtype is np.object_:
        return values.astype(str).astype(object)
    return values.astype(dtype, copy=False)


class OnnxFlavor(ModelFlavor):
    name = "onnx"
    file_extension = "onnx"

    def detect(self, model: Any) -> bool:
        onnx = sys.modules.get("onnx")  # an onnx model object means onnx is imported already
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def save(self, model: Any) -> bytes:
        data: bytes = model.SerializeToString()
        return data

    def from_file(self, data: bytes, *, trust: bool = False) -> Any:
        """The ``onnx.ModelProto`` (what ``save`` takes), not a session."""
        import onnx

        try:
            return onnx.load_model_from_string(data)
        except Exception as exc:  # onnx raises DecodeError and others for a foreign file
            raise InvalidInput(f"not an ONNX model ({exc})", field="model") from exc

    def load(self, data: bytes, *, trust: bool = False) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise InvalidInput(f"not a loadable ONNX model ({exc})", field="model") from exc

    def _feed(self, session: Any, table: pa.Table) -> dict[str, np.ndarray]:
        inputs = session.get_inputs()
        if len(inputs) == 1 and (
            table.num_columns != 1 or inputs[0].name not in table.column_names
        ):
            dtype = _DTYPES.get(inputs[0].type, np.float32)
            matrix = np.column_stack([_column(table, n, dtype) for n in table.column_names])
            return {inputs[0].name: matrix}
        missing = [i.name for i in inputs if i.name not in table.column_names]
        if missing:
            raise InvalidInput(f"the ONNX model needs inputs {missing}", field="input")
        return {
            i.name: _column(table, i.name, _DTYPES.get(i.type, np.float32)).reshape(-1, 1)
            for i in inputs
        }

    def fast_input(self, model: Any, table: pa.Table) -> Any:
        return self._feed(model, table)

    def _run(self, session: Any, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, feed), strict=True))

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        outputs = self._run(model, x)
        first = np.asarray(next(iter(outputs.values())))
        # Regressors answer [N, 1]; flatten to match what scikit-learn gives.
        return first.ravel() if first.ndim == 2 and first.shape[1] == 1 else first

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        outputs = self._run(model, x)
        if len(outputs) < 2:
            return super().predict_proba_input(model, x)
        proba = outputs.get("probabilities", list(outputs.values())[1])
        if isinstance(proba, list):  # a ZipMap output: one dict per row
            keys = sorted(proba[0]) if proba else []
            return np.array([[row[k] for k in keys] for row in proba], dtype=np.float64)
        return np.asarray(proba, dtype=np.float64)

    def runtime(self, model: Any) -> Any:
        return self.load(self.save(model))

    def signature_hints(self, model: Any) -> SignatureHints:
        """Classifiers converted by skl2onnx carry their labels on the classifier node."""
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                    labels: list[Any] = list(attr.ints)
                elif attr.name == "classlabels_strings" and attr.strings:
                    labels = [v.decode("utf-8") for v in attr.strings]
                else:
                    continue
                task = "binary_classification" if len(labels) == 2 else "multiclass_classification"
                return SignatureHints(task, labels)
        return SignatureHints()

    def requirements(self, model: Any) -> list[str]:
        return pinned("onnxruntime", "numpy")
