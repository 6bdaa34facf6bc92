"""The model registry: versions, signatures, flavors, aliases, promotion gates, lineage.

Other parts use the registry only through the names exported here.
"""

from modelcycle.registry._metrics import METRICS, Metric
from modelcycle.registry.alias_moves import alias_of_ref, move_alias_back
from modelcycle.registry.approval_policy import (
    PromotionPolicies,
    PromotionPolicy,
    load_promotion_policies,
)
from modelcycle.registry.approvals import (
    Approval,
    PromotionApprovals,
    PromotionRequest,
    request_origin,
)
from modelcycle.registry.errors import (
    ColumnProblem,
    PromotionRefused,
    SignatureMismatch,
    UntrustedModel,
)
from modelcycle.registry.evaluation import version_evaluation
from modelcycle.registry.flavors import ModelFlavor, detect_flavor, get_flavor
from modelcycle.registry.gate import DEFAULT_MIN_ROWS, encode_row_hashes, row_hashes
from modelcycle.registry.lineage import Lineage
from modelcycle.registry.loaded import LoadedModel
from modelcycle.registry.promotion import PromotionResult
from modelcycle.registry.refs import ModelRef, parse_model_ref
from modelcycle.registry.registry import ModelRegistry
from modelcycle.registry.signature import ColumnSpec, OutputSpec, Signature, enforce

__all__ = [
    "DEFAULT_MIN_ROWS",
    "METRICS",
    "Approval",
    "ColumnProblem",
    "ColumnSpec",
    "Lineage",
    "LoadedModel",
    "Metric",
    "ModelFlavor",
    "ModelRef",
    "ModelRegistry",
    "OutputSpec",
    "PromotionApprovals",
    "PromotionPolicies",
    "PromotionPolicy",
    "PromotionRefused",
    "PromotionRequest",
    "PromotionResult",
    "Signature",
    "SignatureMismatch",
    "UntrustedModel",
    "alias_of_ref",
    "detect_flavor",
    "encode_row_hashes",
    "enforce",
    "get_flavor",
    "load_promotion_policies",
    "move_alias_back",
    "parse_model_ref",
    "request_origin",
    "row_hashes",
    "version_evaluation",
]
