"""The scoring package's public surface is pinned."""

import modelcycle.scoring


def test_scoring_exports() -> None:
    assert sorted(modelcycle.scoring.__all__) == [
        "DEFAULT_MAX_BODY_BYTES",
        "ModelSlot",
        "RequestInvalid",
        "ScoreResult",
        "ScoringEngine",
        "create_app",
        "serve",
    ]
    for name in modelcycle.scoring.__all__:
        assert hasattr(modelcycle.scoring, name)
