"""Real-time scoring: a transport-neutral engine, protocol adapters and the HTTP server.

Other parts use scoring only through the names exported here. Monitoring reads what the
server saw with :func:`read_predictions` and :func:`read_feedback`.

The names are loaded on first use (PEP 562): ``modelcycle score`` imports
``modelcycle.scoring.batch`` and must not pay for the HTTP server stack (Starlette, the
runner, the handlers, prometheus_client) that ``import modelcycle.scoring`` would otherwise
pull in; that was most of the batch job's start-up ahead of the floor.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from modelcycle.scoring.server import (
        DEFAULT_MAX_BODY_BYTES,
        Serving,
        create_app,
        required_role,
    )
    from modelcycle.scoring.swap import AliasFollower, FollowedAlias, SwapReport

# Exported name -> the submodule that defines it. A new export is a line here, in __all__
# and in the TYPE_CHECKING imports above (for type checkers).
_SOURCES: dict[str, str] = {
    "DEFAULT_MAX_BODY_BYTES": "server",
    "AliasFollower": "swap",
    "FeedbackResult": "feedback",
    "FollowedAlias": "swap",
    "LogRecord": "prediction_log",
    "ModelSlot": "engine",
    "PredictionLog": "prediction_log",
    "RequestInvalid": "protocols",
    "ScoreResult": "engine",
    "ScoringEngine": "engine",
    "Serving": "server",
    "SpillIngest": "prediction_log",
    "SwapReport": "swap",
    "create_app": "server",
    "ingest_spill": "prediction_log",
    "parse_feedback": "feedback",
    "read_feedback": "feedback",
    "read_predictions": "prediction_log",
    "required_role": "server",
    "serve": "runner",
    "store_feedback": "feedback",
}

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


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{source}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
