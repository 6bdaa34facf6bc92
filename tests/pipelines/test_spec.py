"""Defining pipelines: the wiring rule, its order, and the errors found at definition time."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle import InvalidInput
from modelcycle.pipelines import Pipeline, load_pipeline, step


@step
def raw(n):  # type: ignore[no-untyped-def]
    return list(range(n))


@step
def left(raw):  # type: ignore[no-untyped-def]
    return [x + 1 for x in raw]


@step
def right(raw, factor=3):  # type: ignore[no-untyped-def]
    return [x * factor for x in raw]


@step
def joined(left, right):  # type: ignore[no-untyped-def]
    return left + right


def test_diamond_is_ordered_by_its_wiring_not_by_the_list() -> None:
    pipe = Pipeline("d", [joined, right, left, raw], params={"n": 3})
    names = [s.name for s in pipe.steps]
    assert names.index("raw") < names.index("left") < names.index("joined")
    assert names.index("raw") < names.index("right") < names.index("joined")
    assert pipe.wiring["joined"] == {"left": "left", "right": "right"}
    assert pipe.param_names == {"n", "factor"}
    params = pipe.resolve_params({"factor": 10})
    assert pipe.step_params(right, params) == {"factor": 10}
    assert pipe.step_params(raw, params) == {"n": 3}
    # A step is still the plain function.
    assert joined([1], [2]) == [1, 2]


def test_missing_input_is_found_at_definition_time() -> None:
    @step
    def uses_typo(rigth):  # type: ignore[no-untyped-def]
        return rigth

    with pytest.raises(InvalidInput, match="'rigth' has no source") as info:
        Pipeline("d", [raw, uses_typo], params={"n": 1})
    assert info.value.field == "uses_typo.rigth"


def test_cycles_and_duplicates_are_refused() -> None:
    @step(outputs="a")
    def make_a(b):  # type: ignore[no-untyped-def]
        return b

    @step(outputs="b")
    def make_b(a):  # type: ignore[no-untyped-def]
        return a

    with pytest.raises(InvalidInput, match="cycle"):
        Pipeline("c", [make_a, make_b])
    with pytest.raises(InvalidInput, match="two steps are named 'raw'"):
        Pipeline("c", [raw, raw], params={"n": 1})

    @step(name="other", outputs="raw")
    def also_raw():  # type: ignore[no-untyped-def]
        return []

    with pytest.raises(InvalidInput, match="produced by both"):
        Pipeline("c", [raw, also_raw], params={"n": 1})
    with pytest.raises(InvalidInput, match="mark the function with @step"):
        Pipeline("c", [lambda: 1])  # type: ignore[list-item]


def test_run_parameters_are_checked() -> None:
    pipe = Pipeline("d", [raw, left], required=("n",))
    with pytest.raises(InvalidInput, match="needs a value for 'n'"):
        pipe.resolve_params({})
    with pytest.raises(InvalidInput, match="no parameter 'm'; its parameters: n"):
        pipe.resolve_params({"n": 1, "m": 2})


def test_multiple_outputs_need_a_dict_with_exactly_those_keys() -> None:
    @step(outputs=("train", "test"))
    def split(raw):  # type: ignore[no-untyped-def]
        return {"train": raw[:2], "test": raw[2:]}

    assert split.split_outputs({"train": 1, "test": 2}) == {"train": 1, "test": 2}
    with pytest.raises(InvalidInput, match="exactly those keys"):
        split.split_outputs((1, 2))


def test_references_and_declared_pipelines(tmp_path: Path) -> None:
    (tmp_path / "mc_refmod.py").write_text(
        "from modelcycle.pipelines import Pipeline, step\n\n"
        "@step\ndef one():\n    return 1\n\n"
        "pipe = Pipeline('one', [one])\nnot_a_pipeline = 3\n"
    )
    assert load_pipeline("mc_refmod:pipe", root=tmp_path).name == "one"
    config = {"pipelines": {"daily": "mc_refmod:pipe"}}
    assert load_pipeline("daily", root=tmp_path, config=config).name == "one"
    with pytest.raises(InvalidInput, match="not a Pipeline"):
        load_pipeline("mc_refmod:not_a_pipeline", root=tmp_path)
    with pytest.raises(InvalidInput, match="has no 'missing'"):
        load_pipeline("mc_refmod:missing", root=tmp_path)
    with pytest.raises(InvalidInput, match="cannot import 'mc_nowhere'"):
        load_pipeline("mc_nowhere:pipe", root=tmp_path)
    with pytest.raises(InvalidInput, match=r"declared: daily"):
        load_pipeline("weekly", root=tmp_path, config=config)


def test_public_surface_of_pipelines_is_pinned() -> None:
    import modelcycle.pipelines as pipelines

    assert pipelines.__all__ == [
        "ALGORITHMS",
        "TABULAR_TRAINER",
        "TABULAR_TRAINER_REF",
        "TASKS",
        "Pipeline",
        "PipelineRunner",
        "Pipelines",
        "RunComparison",
        "RunEnded",
        "Step",
        "StepContext",
        "cache_key",
        "load_pipeline",
        "parse_hyperparam",
        "step",
    ]
    for name in pipelines.__all__:
        assert hasattr(pipelines, name), name
