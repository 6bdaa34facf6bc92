"""Model formats behind one interface, looked up by name or detected from the model object."""

from __future__ import annotations

from typing import Any

from modelcycle.errors import InvalidInput
from modelcycle.registry.flavors.base import ModelFlavor
from modelcycle.registry.flavors.onnx import OnnxFlavor
from modelcycle.registry.flavors.pickle_trusted import PickleFlavor
from modelcycle.registry.flavors.sklearn_skops import SklearnSkopsFlavor

__all__ = ["FLAVORS", "ModelFlavor", "detect_flavor", "get_flavor"]

# Detection order: the first flavor whose detect() says yes stores the model.
FLAVORS: dict[str, ModelFlavor] = {
    f.name: f for f in (SklearnSkopsFlavor(), OnnxFlavor(), PickleFlavor())
}


def get_flavor(name: str) -> ModelFlavor:
    """The flavor called ``name``; the error lists the valid names."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown flavor {name!r}; expected one of {', '.join(FLAVORS)}", field="flavor"
        ) from None


def detect_flavor(model: Any) -> ModelFlavor:
    """The flavor that stores ``model``; pickle is never chosen without being asked for."""
    for flavor in FLAVORS.values():
        if flavor.detect(model):
            return flavor
    raise InvalidInput(
        f"no flavor stores a {type(model).__module__}.{type(model).__qualname__}; "
        "pass flavor='pickle' with trust=True to store it as a pickle",
        field="model",
    )
