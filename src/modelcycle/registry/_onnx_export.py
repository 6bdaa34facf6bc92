"""scikit-learn -> ONNX with skl2onnx, and the check that both answer alike before registering."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import Conflict, InvalidInput
from modelcycle.registry.signature import Signature

if TYPE_CHECKING:
    # Annotations only: the skops flavor imports this module, and the loaded model imports
    # the flavors, so importing either here at run time would close a cycle.
    from modelcycle.registry.flavors import ModelFlavor
    from modelcycle.registry.loaded import LoadedModel

__all__ = ["check_agreement", "convert"]

LABEL_AGREEMENT = 0.999
PROBA_TOLERANCE = 1e-4
REGRESSION_RTOL = 1e-4

_NUMERIC = (
    "double",
    "float32",
    "halffloat",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)


def convert(model: Any, signature: Signature) -> Any:
    """The ONNX graph of ``model``: one float matrix input when every column is numeric,
    else one ``[N, 1]`` input per column (strings as string tensors)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [c.type for c in signature.inputs]
    if all(t in _NUMERIC for t in types):
        initial = [("input", FloatTensorType([None, len(types)]))]
    else:
        unsupported = [c.name for c in signature.inputs if c.type not in (*_NUMERIC, "string")]
        if unsupported:
            raise InvalidInput(
                f"columns {unsupported} have types ONNX export does not handle", field="model"
            )
        initial = [
            (
                c.name,
                StringTensorType([None, 1]) if c.type == "string" else FloatTensorType([None, 1]),
            )
            for c in signature.inputs
        ]
    options = {"zipmap": False} if signature.is_classifier else None
    try:
        return to_onnx(model, initial_types=initial, options=options)
    except Exception as exc:  # skl2onnx raises many kinds for estimators it cannot convert
        # skl2onnx messages can carry the whole graph; the first line says what failed.
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise InvalidInput(
            f"skl2onnx cannot convert this {type(model).__name__} ({type(exc).__name__}: {reason})",
            field="model",
        ) from exc


def check_agreement(
    original: LoadedModel, flavor: ModelFlavor, session: Any, features: pa.Table, where: str
) -> None:
    """Raise Conflict naming the disagreement unless the ONNX model answers like the original."""
    sig = original.signature
    expected = original.flavor.predict(original.model, features)
    got = flavor.predict(session, features)
    n = len(expected)
    if sig.is_classifier:
        same = (
            float(np.mean(np.asarray(expected).astype(str) == np.asarray(got).astype(str)))
            if n
            else 1.0
        )
        if same < LABEL_AGREEMENT:
            raise Conflict(
                f"the ONNX conversion disagrees on {where}: labels equal on {same:.2%} of "
                f"{n} rows, below the required {LABEL_AGREEMENT:.1%}; not registered"
            )
        p_expected = original.flavor.predict_proba(original.model, features)
        p_got = flavor.predict_proba(session, features)
        worst = float(np.max(np.abs(p_expected - p_got))) if n else 0.0
        if p_expected.shape != p_got.shape or worst > PROBA_TOLERANCE:
            raise Conflict(
                f"the ONNX conversion disagrees on {where}: probabilities differ by up to "
                f"{worst:.3g} (allowed {PROBA_TOLERANCE:g}); not registered"
            )
        return
    a = np.asarray(expected, dtype=np.float64).ravel()
    b = np.asarray(got, dtype=np.float64).ravel()
    if a.shape != b.shape or not np.allclose(a, b, rtol=REGRESSION_RTOL, atol=REGRESSION_RTOL):
        worst = float(np.max(np.abs(a - b))) if a.shape == b.shape and n else float("nan")
        raise Conflict(
            f"the ONNX conversion disagrees on {where}: predictions differ by up to {worst:.3g} "
            f"(allowed relative {REGRESSION_RTOL:g}); not registered"
        )
