"""The engine in-process, through its public API: readiness, batching, isolation of failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from _scoring_helpers import Models

from modelcycle import Workspace
from modelcycle.errors import InvalidInput, NotFound, NotReady
from modelcycle.registry import LoadedModel, SignatureMismatch
from modelcycle.scoring import ScoringEngine


@pytest.fixture(scope="module")
def loaded(models: Models) -> Iterator[dict[str, LoadedModel]]:
    with Workspace(models.root) as ws:
        yield {name: ws.registry.load(f"{name}/1") for name in ("credit", "typed", "ridge")}


def ridge_table(n: int, start: float = 0.0) -> pa.Table:
    x = np.arange(n, dtype=np.float64) + start
    return pa.table({"a": x, "b": x * 2, "c": -x})


def test_constructor_does_no_io_and_scoring_waits_for_load(
    loaded: dict[str, LoadedModel],
) -> None:
    calls: list[str] = []

    def loader() -> LoadedModel:
        calls.append("load")
        return loaded["ridge"]

    engine = ScoringEngine([loader])
    assert calls == []
    assert not engine.ready
    with pytest.raises(NotReady):
        asyncio.run(engine.score("ridge", None, ridge_table(1)))
    engine.load()
    engine.load()  # a second call does nothing
    try:
        assert calls == ["load"]
        assert engine.ready
        assert [(s.name, s.version) for s in engine.slots()] == [("ridge", 1)]
        with pytest.raises(NotFound):
            engine.get("ridge", 2)
    finally:
        engine.close()
    assert not engine.ready


def test_bad_settings_refused() -> None:
    with pytest.raises(InvalidInput):
        ScoringEngine([])
    with pytest.raises(InvalidInput):
        ScoringEngine([lambda: None], max_batch_rows=0)  # type: ignore[list-item,return-value]


def test_concurrent_calls_share_predict_calls(
    loaded: dict[str, LoadedModel], models: Models
) -> None:
    engine = ScoringEngine([loaded["ridge"]], max_batch_rows=16, max_wait_ms=5)
    engine.load()

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(engine.score("ridge", 1, ridge_table(1, float(i))) for i in range(40))
        )

    try:
        results = asyncio.run(main())
        stats = engine.stats()[("ridge", 1)]
    finally:
        engine.close()
    for i, result in enumerate(results):
        assert result.model_version == 1
        expected = models.ridge.predict(ridge_table(1, float(i)).to_pandas())
        np.testing.assert_allclose(result.predictions, expected, rtol=1e-12)
    assert stats.requests == 40
    assert stats.predict_calls < 40
    # never more rows in one call than max_batch_rows
    assert stats.batch_buckets[4] == stats.predict_calls  # every batch <= 16 rows
    assert stats.batch_rows_sum == 40


def test_a_lone_request_does_not_wait_for_max_wait(loaded: dict[str, LoadedModel]) -> None:
    engine = ScoringEngine([loaded["ridge"]], max_wait_ms=500)
    engine.load()

    async def main() -> float:
        await engine.score("ridge", None, ridge_table(1))
        started = time.perf_counter()
        for _ in range(5):
            await engine.score("ridge", None, ridge_table(1))
        return (time.perf_counter() - started) / 5

    try:
        per_call = asyncio.run(main())
    finally:
        engine.close()
    assert per_call < 0.25, per_call  # far below the 500 ms max wait


def test_a_bad_request_fails_alone(loaded: dict[str, LoadedModel]) -> None:
    engine = ScoringEngine([loaded["ridge"]])
    engine.load()
    bad = pa.table({"a": [1.0], "b": [2.0]})

    async def main() -> list[Any]:
        tables = [ridge_table(1), bad, ridge_table(2), ridge_table(1)]
        return await asyncio.gather(
            *(engine.score("ridge", None, t) for t in tables), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        engine.close()
    assert isinstance(results[1], SignatureMismatch)
    assert [p.column for p in results[1].problems] == ["c"]
    assert [len(r.predictions) for i, r in enumerate(results) if i != 1] == [1, 2, 1]


class _Flaky(LoadedModel):
    """Fails whenever any row has a == -1: a model-side error in one caller's rows."""

    def predict(self, data: Any, *, validated: bool = False) -> np.ndarray:
        if -1.0 in data.column("a").to_pylist():
            raise ValueError("cannot score a = -1")
        return super().predict(data, validated=validated)


def test_a_model_error_in_a_batch_fails_only_its_request(loaded: dict[str, LoadedModel]) -> None:
    base = loaded["ridge"]
    flaky = _Flaky(base.version, base.signature, base.flavor, base.model)
    engine = ScoringEngine([flaky], max_wait_ms=20)
    engine.load()
    poison = pa.table({"a": [-1.0], "b": [0.0], "c": [0.0]})

    async def main() -> list[Any]:
        tables = [ridge_table(1, 5), poison, ridge_table(1, 7), ridge_table(3, 1)]
        return await asyncio.gather(
            *(engine.score("ridge", None, t) for t in tables), return_exceptions=True
        )

    try:
        results = asyncio.run(main())
    finally:
        engine.close()
    assert isinstance(results[1], ValueError)
    assert [len(r.predictions) for i, r in enumerate(results) if i != 1] == [1, 1, 3]


def test_probabilities_for_classifiers_only(loaded: dict[str, LoadedModel], models: Models) -> None:
    engine = ScoringEngine([loaded["typed"], loaded["ridge"]])
    engine.load()
    frame = models.typed_x.head(3)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    try:
        result = asyncio.run(engine.score("typed", None, table, proba=True))
        with pytest.raises(InvalidInput):
            asyncio.run(engine.score("ridge", None, ridge_table(1), proba=True))
    finally:
        engine.close()
    np.testing.assert_allclose(result.probabilities, models.typed.predict_proba(frame))
    assert result.predictions is not None
    assert result.predictions.tolist() == models.typed.predict(frame).tolist()
    assert result.classes == [0, 1]
