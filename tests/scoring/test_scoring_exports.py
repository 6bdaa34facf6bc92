"""The scoring package's public surface is pinned."""

import modelcycle.scoring


def test_scoring_exports() -> None:
    assert sorted(modelcycle.scoring.__all__) == [
        "AliasFollower",
        "DEFAULT_MAX_BODY_BYTES",
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
    for name in modelcycle.scoring.__all__:
        assert hasattr(modelcycle.scoring, name)
