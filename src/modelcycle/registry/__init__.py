"""The model registry: versions, signatures, flavors, aliases, promotion gates, lineage.

Other parts use the registry only through the names exported here.
"""

from modelcycle.registry.errors import (
    ColumnProblem,
    PromotionRefused,
    SignatureMismatch,
    UntrustedModel,
)
from modelcycle.registry.flavors import ModelFlavor, detect_flavor, get_flavor
from modelcycle.registry.loaded import LoadedModel
from modelcycle.registry.refs import ModelRef, parse_model_ref
from modelcycle.registry.registry import Lineage, ModelRegistry, PromotionResult
from modelcycle.registry.signature import ColumnSpec, OutputSpec, Signature, enforce

__all__ = [
    "ColumnProblem",
    "ColumnSpec",
    "Lineage",
    "LoadedModel",
    "ModelFlavor",
    "ModelRef",
    "ModelRegistry",
    "OutputSpec",
    "PromotionRefused",
    "PromotionResult",
    "Signature",
    "SignatureMismatch",
    "UntrustedModel",
    "detect_flavor",
    "enforce",
    "get_flavor",
    "parse_model_ref",
]
