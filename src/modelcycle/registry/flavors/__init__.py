"""Model formats behind one contract (:class:`ModelFlavor`), looked up by name in one table or
detected from the model object.

Built in: ``onnx``, ``xgboost``, ``lightgbm``, ``python-model``, ``skops``, ``pickle``.
Another package adds one with :func:`register_flavor`, or without any call by declaring an
entry point in the ``modelcycle.flavors`` group (its value a :class:`ModelFlavor` subclass or
instance); entry points are read the first time a flavor is looked up. Nothing outside a
flavor's own module tests a flavor's name: the registry, batch scoring and bundles ask the
flavor (``needs_trust``, ``file_extension``, ``fast_input`` ...).
"""

from __future__ import annotations

import threading
import warnings
from importlib import metadata as importlib_metadata
from typing import Any

from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors.base import ModelFlavor, SignatureHints
from modelcycle.registry.flavors.lightgbm_text import LightGBMFlavor
from modelcycle.registry.flavors.onnx import OnnxFlavor
from modelcycle.registry.flavors.pickle_trusted import PickleFlavor
from modelcycle.registry.flavors.python_model import PythonModelFlavor, PythonModelSpec
from modelcycle.registry.flavors.sklearn_skops import SklearnSkopsFlavor
from modelcycle.registry.flavors.xgboost_ubj import XGBoostFlavor

__all__ = [
    "ENTRY_POINT_GROUP",
    "ModelFlavor",
    "PythonModelSpec",
    "SignatureHints",
    "detect_flavor",
    "flavor_names",
    "get_flavor",
    "register_flavor",
]

ENTRY_POINT_GROUP = "modelcycle.flavors"

# Detection order: the first flavor whose detect() says yes stores the model. XGBoost and
# LightGBM wrappers are scikit-learn estimators too, so they come before skops; pickle never
# detects. Flavors added later are asked first (they are the more specific ones).
_BUILT_IN: tuple[ModelFlavor, ...] = (
    OnnxFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    PythonModelFlavor(),
    SklearnSkopsFlavor(),
    PickleFlavor(),
)
_FLAVORS: dict[str, ModelFlavor] = {f.name: f for f in _BUILT_IN}
_ADDED: list[str] = []
_lock = threading.Lock()
_entry_points_read = False


def register_flavor(flavor: ModelFlavor | type[ModelFlavor], *, replace: bool = False) -> None:
    """Add a flavor (a :class:`ModelFlavor` subclass or instance) under its ``name``; a name
    taken already is refused unless ``replace``."""
    instance = flavor() if isinstance(flavor, type) else flavor
    if not isinstance(instance, ModelFlavor):
        raise InvalidInput(
            f"expected a ModelFlavor subclass or instance, got {type(instance).__name__}",
            field="flavor",
        )
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidInput("a flavor needs a non-empty name", field="flavor")
    with _lock:
        if name in _FLAVORS and not replace:
            raise InvalidInput(f"a flavor named {name!r} exists already", field="flavor")
        _FLAVORS[name] = instance
        if name in _ADDED:
            _ADDED.remove(name)
        _ADDED.insert(0, name)


def _read_entry_points() -> None:
    """Register every ``modelcycle.flavors`` entry point, once per process. A plug-in that
    fails to load is reported as a warning; the other flavors keep working."""
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for entry in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_flavor(entry.load())
        except Exception as exc:  # a broken plug-in must not break the built-in flavors
            warnings.warn(
                f"modelcycle: the flavor entry point {entry.name!r} ({entry.value}) was not "
                f"loaded: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )


def _ordered() -> list[ModelFlavor]:
    _read_entry_points()
    added = [_FLAVORS[n] for n in _ADDED]
    return added + [f for f in _FLAVORS.values() if f.name not in _ADDED]


def flavor_names() -> list[str]:
    """Every flavor's name, in detection order."""
    return [f.name for f in _ordered()]


def get_flavor(name: str) -> ModelFlavor:
    """The flavor called ``name``; the error lists the valid names."""
    _read_entry_points()
    try:
        return _FLAVORS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown flavor {name!r}; expected one of {', '.join(flavor_names())}",
            field="flavor",
        ) from None


def detect_flavor(model: Any) -> ModelFlavor:
    """The flavor that stores ``model``; one that needs trust detects only what was made
    for it (pickle never detects: it must be asked for)."""
    for flavor in _ordered():
        if flavor.detect(model):
            return flavor
    raise InvalidInput(
        f"no flavor stores a {type(model).__module__}.{type(model).__qualname__}; "
        "pass flavor='pickle' with trust=True to store it as a pickle",
        field="model",
    )
