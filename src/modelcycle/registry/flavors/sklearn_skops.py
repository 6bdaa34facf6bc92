"""scikit-learn models persisted with skops, which builds objects without running pickle code.

Loading first lists the types the file would build (``skops.io.get_untrusted_types``) and
refuses any outside the trusted list, naming them. The trusted list is skops' defaults plus
classes *defined in* scikit-learn (``sklearn.`` modules): skops alone does not trust internal
types such as HistGradientBoosting's ``TreePredictor``. A name under ``sklearn.`` that resolves
to anything but a class defined there (a re-exported function, a module) stays untrusted.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInput
from modelcycle.registry.errors import UntrustedModel
from modelcycle.registry.flavors.base import (
    ModelFlavor,
    distribution_of,
    pinned,
    positional_estimator,
)

__all__ = ["SklearnSkopsFlavor", "canonical_skops", "trusted_sklearn_types"]

# Module prefixes whose own classes we trust, plus a few exact names; nothing else is added
# to skops' defaults. numpy.dtype builds a data type description (SimpleImputer and other
# estimators keep one), which runs no code of the file's choosing.
_TRUSTED_PREFIXES = ("sklearn.",)
_TRUSTED_EXACT = frozenset({"numpy.dtype"})
# A member skops names after an object's id(): "140611273181584.npy".
_ID_FILE = re.compile(r"^[0-9]+\.[a-z]+$")


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


def canonical_skops(data: bytes) -> bytes:
    """The same skops file with the same bytes each time the same model is saved.

    skops names objects by ``id()`` (``__id__`` in ``schema.json``, ``<id>.npy`` members) and
    stamps each zip member with the time: saving one model twice gives two sha256. Each id is
    renumbered by its first appearance (the same id keeps the same number, so shared objects
    stay shared), members are written in name order with a fixed date.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    schema = json.loads(members.pop("schema.json"))
    numbers: dict[str, str] = {}

    def number(value: str) -> str:
        return numbers.setdefault(value, str(len(numbers) + 1))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    out[key] = int(number(str(value)))
                elif key == "file" and isinstance(value, str) and _ID_FILE.match(value):
                    stem, ext = value.split(".", 1)
                    out[key] = f"{number(stem)}.{ext}"
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    renamed = walk(schema)
    files = {"schema.json": json.dumps(renamed, indent=2).encode()}
    for name, content in members.items():
        stem, dot, ext = name.partition(".")
        files[f"{numbers[stem]}.{ext}" if dot and stem in numbers else name] = content
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as out:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            out.writestr(info, files[name])
    return sink.getvalue()


class SklearnSkopsFlavor(ModelFlavor):
    name = "skops"
    file_extension = "skops"
    converts_to_onnx = True

    def detect(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator
        except ImportError:
            return False
        return isinstance(model, BaseEstimator)

    def save(self, model: Any) -> bytes:
        import skops.io as sio

        return canonical_skops(sio.dumps(model))

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

    def array_predictor(self, model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        if not positional_estimator(model):
            return None
        predict: Callable[[np.ndarray], np.ndarray] = model.predict
        return predict

    def predict_input(self, model: Any, x: Any) -> np.ndarray:
        return np.asarray(model.predict(x))

    def compiled_labels(
        self, model: Any, cache_dir: Path, key: str, *, build: bool = True
    ) -> Callable[[Any], np.ndarray] | None:
        from modelcycle.registry.compiled_trees import compile_labels

        return compile_labels(model, cache_dir, key, build=build)

    def predict_proba_input(self, model: Any, x: Any) -> np.ndarray:
        if not hasattr(model, "predict_proba"):
            return super().predict_proba_input(model, x)
        return np.asarray(model.predict_proba(x))

    def to_onnx(self, model: Any, signature: Any) -> Any:
        from modelcycle.registry._onnx_export import convert

        return convert(model, signature)

    def requirements(self, model: Any) -> list[str]:
        extra = [d for d in distribution_of(model) if d not in ("scikit-learn",)]
        return pinned("scikit-learn", "skops", "numpy", "scipy", "pandas", *extra)
