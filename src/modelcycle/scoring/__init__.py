"""Real-time scoring: a transport-neutral engine, protocol adapters and the HTTP server.

Other parts use scoring only through the names exported here.
"""

from modelcycle.scoring.engine import ModelSlot, ScoreResult, ScoringEngine
from modelcycle.scoring.protocols import RequestInvalid
from modelcycle.scoring.runner import serve
from modelcycle.scoring.server import DEFAULT_MAX_BODY_BYTES, create_app

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ModelSlot",
    "RequestInvalid",
    "ScoreResult",
    "ScoringEngine",
    "create_app",
    "serve",
]
