"""The all-numeric fast path: a JSON body straight into one float64 array, checked, predicted.

For a version whose inputs are all ``double``/``int64`` columns and whose model takes a plain
array (scikit-learn estimators that select no column by name), ``/invocations`` with
``dataframe_split`` skips the general path (per-column Arrow arrays, signature enforcement,
pandas): the rows become one ``numpy`` array, vectorised checks stand in for ``enforce``, and
the array goes to ``model.predict`` as the reference floor does.

The fast path takes only what it can prove the general path would accept unchanged; anything
else (a ``true``/``false``/string value, a null where the column allows none, a fractional
value in an integer column, a magnitude of 2**53 or more, unusual keys, columns in another order)
returns ``None`` and the request goes the general way, which words the problems. So both paths
answer the same thing: same predictions (the array is the one ``DataFrame.to_numpy()`` gives
for the enforced table), same errors.

The model must agree: its flavor must offer an array predictor (scikit-learn models whose every
step takes columns by position), and a few made-up rows predicted both ways must give equal
answers, else the version has no fast path.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.registry import LoadedModel

__all__ = ["NumericFastPath", "array_predictor"]

_log = logging.getLogger(__name__)

# The signature types the fast path carries, and the array dtype each becomes.
_NUMERIC = {"double": np.float64, "float64": np.float64, "int64": np.int64}
# From this magnitude on a JSON number may be an integer that a float64 cannot hold exactly,
# which Arrow refuses in a column of floats and numpy would round silently; once parsed, it
# cannot be told from a float literal, so the general path decides.
_LIMIT = float(2**53)
# sklearn warns once per call when a model fitted on a DataFrame gets an array; the fast path
# checked the names itself (same names, same order), so the warning says nothing here.
_NAMES_WARNING = "X does not have valid feature names"

ArrayPredict = Callable[[np.ndarray], np.ndarray]


class NumericFastPath:
    """One version's fast path: decode a parsed body into an array, predict on arrays."""

    def __init__(
        self, names: list[str], types: list[str], nullable: list[bool], predict: ArrayPredict
    ) -> None:
        self.names = names
        self.width = len(names)
        self._predict = predict
        self.compiled = False  # predicting with compiled trees (compile_in_background)
        dtypes = [_NUMERIC[t] for t in types]
        self._nullable = np.array(nullable, dtype=bool)
        self._int_cols = np.array([d is np.int64 for d in dtypes])
        self._any_int = bool(self._int_cols.any())
        # The enforced table's DataFrame holds int64 and float64 columns; to_numpy() of that
        # is float64 unless every column is int64.
        self.dtype = np.int64 if all(d is np.int64 for d in dtypes) else np.float64

    def __repr__(self) -> str:
        return f"NumericFastPath({self.width} columns)"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels for rows :meth:`decode` returned."""
        return self._predict(x)

    def compile_in_background(self, model: LoadedModel, cache_dir: Path) -> threading.Thread:
        """Build (or read back) the flavor's compiled stand-in in a thread and predict with it
        once it answers as the current predictor does (``ModelFlavor.compiled_labels``: the
        same labels, much less time per row). Requests go on meanwhile: a build takes
        seconds, most of it in the compiler's own processes."""

        def run() -> None:
            try:
                labels = model.flavor.compiled_labels(model.model, cache_dir, model.version.sha256)
            except Exception as exc:  # the server keeps the predictor it has
                _log.warning("no compiled trees for %s: %s", model.version.ref, exc)
                return
            if labels is not None and self._agrees(model, labels):
                self._predict = labels
                self.compiled = True
                _log.info("%s predicts with compiled trees", model.version.ref)

        thread = threading.Thread(target=run, name="modelcycle-compile", daemon=True)
        thread.start()
        return thread

    @classmethod
    def for_model(cls, model: LoadedModel) -> NumericFastPath | None:
        """The fast path for ``model``, or None when its inputs or its model do not allow it."""
        inputs = model.signature.inputs
        if not inputs or any(c.type not in _NUMERIC for c in inputs):
            return None
        if any(c.nullable and c.type == "int64" for c in inputs):
            return None  # a null int becomes a float column in pandas: leave it to the general path
        predict = array_predictor(model)
        if predict is None:
            return None
        fast = cls(
            [c.name for c in inputs],
            [c.type for c in inputs],
            [c.nullable for c in inputs],
            predict,
        )
        return fast if fast._agrees(model) else None

    def decode(self, raw: bytes, body: Any, max_rows: int) -> np.ndarray | None:
        """The rows of a ``dataframe_split`` body as one array, or None: take the general path.

        ``raw`` is the body as sent: a ``true``/``false`` anywhere in it (numpy would read a
        boolean as 1/0) sends the request the general way.
        """
        if not isinstance(body, dict) or len(body) != 1:
            return None
        split = body.get("dataframe_split")
        if not isinstance(split, dict) or split.keys() != {"columns", "data"}:
            return None
        if split["columns"] != self.names:
            return None
        data = split["data"]
        if not isinstance(data, list) or not 0 < len(data) <= max_rows:
            return None
        if b"true" in raw or b"false" in raw:
            return None
        try:
            x = np.array(data)
        except (ValueError, TypeError, OverflowError):  # ragged rows and the like
            return None
        if x.ndim != 2 or x.shape[1] != self.width:
            return None
        if x.dtype.kind == "O":
            # Nulls (None) among numbers: only int, float and None may be in there.
            if not set(map(type, x.ravel())) <= {int, float, type(None)}:
                return None
            try:
                x = x.astype(np.float64)
            except (ValueError, TypeError, OverflowError):
                return None
        elif x.dtype.kind not in "fiu":
            return None  # strings, booleans
        return self._checked(x)

    def _checked(self, x: np.ndarray) -> np.ndarray | None:
        """The vectorised stand-in for ``enforce``: None where enforce could differ."""
        if x.dtype.kind == "f":
            nan = np.isnan(x)
            if nan.any():
                if not self._nullable[nan.any(axis=0)].all():
                    return None  # a null where none is allowed: the general path says which
                finite = x[~nan]
            else:
                finite = x
            if finite.size and not np.all(np.abs(finite) < _LIMIT):
                return None  # inf, or perhaps an integer beyond float64's exact range
            if self._any_int:
                ints = x[:, self._int_cols]
                if not np.array_equal(ints, np.trunc(ints)):
                    return None  # a fraction in an integer column
        elif x.dtype.kind == "u":
            return None  # beyond int64: the general path refuses or converts
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return x

    def _agrees(self, model: LoadedModel, predict: ArrayPredict | None = None) -> bool:
        """Both paths on made-up rows (zeros, ones, a spread): the same answers, or no fast path
        (``predict``: a candidate to check instead of the current one)."""
        rng = np.random.default_rng(0)
        rows = np.vstack(
            [np.zeros(self.width), np.ones(self.width), rng.normal(size=(6, self.width))]
        )
        if self._any_int:
            rows[:, self._int_cols] = np.round(rows[:, self._int_cols])
        rows = rows.astype(self.dtype)
        columns = {
            name: pa.array(rows[:, j].astype(np.int64 if self._int_cols[j] else np.float64))
            for j, name in enumerate(self.names)
        }
        try:
            general = np.asarray(model.predict(pa.table(columns)))
            fast = np.asarray((predict or self._predict)(rows))
        except Exception as exc:
            _log.info("no fast path for %s: %s", model.version.ref, exc)
            return False
        same = general.shape == fast.shape and bool(np.array_equal(general, fast))
        if not same:
            _log.info("no fast path for %s: array and table predictions differ", model.version.ref)
        return same


def array_predictor(model: LoadedModel) -> ArrayPredict | None:
    """``model.predict`` on a plain array in signature order, when its flavor says the model
    takes one (``ModelFlavor.array_predictor``: scikit-learn models selecting no column by
    name); None otherwise."""
    offer = getattr(model.flavor, "array_predictor", None)
    predict: ArrayPredict | None = offer(model.model) if offer is not None else None
    if predict is not None:
        warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)
    return predict
