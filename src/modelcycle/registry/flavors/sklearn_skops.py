"""scikit-learn models persisted with skops, which builds objects without running pickle code.

Loading first lists the types the file would build (``skops.io.get_untrusted_types``) and
refuses any outside the trusted list, naming them. The trusted list is skops' defaults plus
classes *defined in* scikit-learn (``sklearn.`` modules): skops alone does not trust internal
types such as HistGradientBoosting's ``TreePredictor``. A name under ``sklearn.`` that resolves
to anything but a class defined there (a re-exported function, a module) stays untrusted.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput
from modelcycle.registry.errors import UntrustedModel
from modelcycle.registry.flavors.base import ModelFlavor, distribution_of, frame_for, pinned

__all__ = ["SklearnSkopsFlavor", "trusted_sklearn_types"]

# Module prefixes whose own classes we trust, plus a few exact names; nothing else is added
# to skops' defaults. numpy.dtype builds a data type description (SimpleImputer and other
# estimators keep one), which runs no code of the file's choosing.
_TRUSTED_PREFIXES = ("sklearn.",)
_TRUSTED_EXACT = frozenset({"numpy.dtype"})


def _resolves_to_own_class(type_name: str) -> bool:
    module_name, _, attr = type_name.rpartition(".")
    if not module_name.startswith(_TRUSTED_PREFIXES):
        return False
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    obj = getattr(module, attr, None)
    return (
        isinstance(obj, type)
        and obj.__module__ == module_name
        and obj.__module__.startswith(_TRUSTED_PREFIXES)
    )


def trusted_sklearn_types(names: list[str]) -> tuple[list[str], list[str]]:
    """Split skops' untrusted type names into (trusted by our list, still untrusted)."""
    trusted: list[str] = []
    refused: list[str] = []
    for name in names:
        ok = name in _TRUSTED_EXACT or _resolves_to_own_class(name)
        (trusted if ok else refused).append(name)
    return trusted, refused


class SklearnSkopsFlavor(ModelFlavor):
    name = "skops"

    def detect(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:
            return False
        return isinstance(model, BaseEstimator)

    def save(self, model: Any) -> bytes:
        import skops.io as sio

        data: bytes = sio.dumps(model)
        return data

    def untrusted_types(self, data: bytes) -> list[str]:
        """The types in ``data`` that neither skops nor our list trusts."""
        import skops.io as sio

        try:
            names = sio.get_untrusted_types(data=data)
        except Exception as exc:  # skops raises several kinds for a file that is not its format
            raise InvalidInput(f"not a skops file ({exc})", field="model") from exc
        return trusted_sklearn_types(list(names))[1]

    def load(self, data: bytes, *, trust: bool = False) -> Any:
        import skops.io as sio

        try:
            names = list(sio.get_untrusted_types(data=data))
        except Exception as exc:
            raise InvalidInput(f"not a skops file ({exc})", field="model") from exc
        ours, refused = trusted_sklearn_types(names)
        if refused and not trust:
            raise UntrustedModel(
                f"the skops file holds types that are not trusted: {', '.join(sorted(refused))}; "
                "load it with trust=True (--trust) only if you trust who made it",
                types=sorted(refused),
            )
        return sio.loads(data, trusted=ours + refused if trust else ours)

    def predict(self, model: Any, table: pa.Table) -> np.ndarray:
        return np.asarray(model.predict(frame_for(model, table)))

    def predict_proba(self, model: Any, table: pa.Table) -> np.ndarray:
        if not hasattr(model, "predict_proba"):
            return super().predict_proba(model, table)
        return np.asarray(model.predict_proba(frame_for(model, table)))

    def requirements(self, model: Any) -> list[str]:
        extra = [d for d in distribution_of(model) if d not in ("scikit-learn",)]
        return pinned("scikit-learn", "skops", "numpy", "scipy", "pandas", *extra)
