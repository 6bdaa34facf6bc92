"""Real-time scoring: a transport-neutral engine, protocol adapters and the HTTP server.

Other parts use scoring only through the names exported here. Monitoring reads what the
server saw with :func:`read_predictions` and :func:`read_feedback`.
"""

from modelcycle.scoring.engine import ModelSlot, ScoreResult, ScoringEngine
from modelcycle.scoring.feedback import (
    FeedbackResult,
    parse_feedback,
    read_feedback,
    store_feedback,
)
from modelcycle.scoring.prediction_log import (
    LogRecord,
    PredictionLog,
    SpillIngest,
    ingest_spill,
    read_predictions,
)
from modelcycle.scoring.protocols import RequestInvalid
from modelcycle.scoring.runner import serve
from modelcycle.scoring.server import DEFAULT_MAX_BODY_BYTES, Serving, create_app, required_role
from modelcycle.scoring.swap import AliasFollower, FollowedAlias, SwapReport

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "AliasFollower",
    "FeedbackResult",
    "FollowedAlias",
    "LogRecord",
    "ModelSlot",
    "PredictionLog",
    "RequestInvalid",
    "ScoreResult",
    "ScoringEngine",
    "Serving",
    "SpillIngest",
    "SwapReport",
    "create_app",
    "ingest_spill",
    "parse_feedback",
    "read_feedback",
    "read_predictions",
    "required_role",
    "serve",
    "store_feedback",
]
