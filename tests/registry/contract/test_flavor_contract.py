"""The contract every registered flavor must pass (River's ``check_estimator`` style).

Parametrised over one small model per flavor and kind (skops, ONNX, XGBoost wrapper and raw
booster, LightGBM wrapper and raw booster, python-model, trusted pickle):

- save then load gives identical predictions (and probabilities);
- the same model gives the same bytes (stable sha256), and a file read back saves the same;
- content that would run code is refused without trust, before any of it runs;
- the fast path (``fast_input`` + ``predict_input``, ``array_predictor``) answers as predict;
- a compiled stand-in (``compiled_labels``), where the flavor builds one, gives the same labels;
- through a workspace (one per module, SQLite): the registered version, the scoring server
  and a batch job give the in-process predictions, and the bundle's lean lock holds exactly
  the flavor's requirements (and none of another flavor's libraries).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _flavor_cases import BUILDERS, FULL, Case, build

from modelcycle import Workspace, init_workspace
from modelcycle.errors import ModelcycleError
from modelcycle.registry import UntrustedModel, get_flavor

# Libraries of one flavor or another: a bundle holds only those its own flavor needs.
FLAVOR_LIBRARIES = {"scikit-learn", "skops", "onnxruntime", "onnx", "xgboost-cpu", "lightgbm"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("flavor-contract")


@pytest.fixture(params=sorted(BUILDERS))
def case(request: pytest.FixtureRequest, folder: Path) -> Case:
    return build(request.param, folder)


@pytest.fixture(params=FULL)
def full_case(request: pytest.FixtureRequest, folder: Path) -> Case:
    return build(request.param, folder)


def _answers(case: Case, runtime: Any) -> tuple[np.ndarray, np.ndarray | None]:
    flavor = get_flavor(case.flavor)
    labels = np.asarray(flavor.predict(runtime, case.table))
    proba = flavor.predict_proba(runtime, case.table) if case.classifier else None
    return labels, proba


def test_detect_names_the_flavor_unless_it_must_be_asked_for(case: Case) -> None:
    from modelcycle.registry import detect_flavor

    flavor = get_flavor(case.flavor)
    if case.flavor == "pickle":  # the one flavor never chosen without being named
        assert not flavor.detect(case.model)
    else:
        assert detect_flavor(case.model).name == case.flavor


def test_round_trip_gives_identical_predictions(case: Case) -> None:
    flavor = get_flavor(case.flavor)
    before = _answers(case, flavor.runtime(case.model))
    if case.own is not None:  # the flavor answers as the user's own object does
        np.testing.assert_array_equal(before[0], case.own())
    after = _answers(case, flavor.load(flavor.save(case.model), trust=case.trust))
    np.testing.assert_array_equal(after[0], before[0])
    assert len(after[0]) == case.table.num_rows
    if case.classifier:
        assert after[1] is not None
        assert before[1] is not None
        np.testing.assert_array_equal(after[1], before[1])
        assert after[1].shape == (
            case.table.num_rows,
            len(flavor.signature_hints(case.model).classes or []),
        )


def test_sha256_is_stable(case: Case) -> None:
    flavor = get_flavor(case.flavor)
    blob = flavor.save(case.model)
    assert hashlib.sha256(flavor.save(case.model)).hexdigest() == hashlib.sha256(blob).hexdigest()
    # The same file registered twice (models register --flavor F FILE) stores the same bytes.
    again = flavor.save(flavor.from_file(blob, trust=case.trust))
    assert flavor.save(flavor.from_file(blob, trust=case.trust)) == again


class _Boom:
    """Unpickling this writes a file: proof that the bytes ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "ran"))


def test_untrusted_content_is_refused(case: Case, tmp_path: Path) -> None:
    flavor = get_flavor(case.flavor)
    marker = tmp_path / "ran"
    evil = pickle.dumps(_Boom(marker))
    with pytest.raises(ModelcycleError):
        flavor.load(evil, trust=False)
    assert not marker.exists()
    blob = flavor.save(case.model)
    if flavor.needs_trust:
        assert flavor.untrusted_types(blob)
        with pytest.raises(UntrustedModel, match="trust=True"):
            flavor.load(blob)
    else:
        assert flavor.untrusted_types(blob) == []


# A plain array has no column names: scikit-learn says so for a model fitted on a frame (the
# array predictor's callers silence it the same way).
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_fast_path_answers_as_predict(case: Case) -> None:
    flavor = get_flavor(case.flavor)
    runtime = flavor.runtime(case.model)
    labels, proba = _answers(case, runtime)
    x = flavor.fast_input(runtime, case.table)
    np.testing.assert_array_equal(flavor.predict_input(runtime, x), labels)
    if proba is not None:
        np.testing.assert_array_equal(flavor.predict_proba_input(runtime, x), proba)
    predict = flavor.array_predictor(runtime)
    numeric = all(pa.types.is_floating(t) for t in case.table.schema.types)
    if predict is not None and numeric:
        matrix = np.column_stack([c.to_numpy() for c in case.table.columns])
        np.testing.assert_array_equal(predict(matrix), labels)


def test_compiled_labels_answer_as_predict(case: Case, folder: Path) -> None:
    flavor = get_flavor(case.flavor)
    runtime = flavor.runtime(case.model)
    labels, _ = _answers(case, runtime)
    compiled = flavor.compiled_labels(runtime, folder / "compiled", f"contract-{case.id}")
    if case.id == "skops-trees" and shutil.which("gcc"):
        assert compiled is not None, "boosted trees compile where there is a C compiler"
    if compiled is not None:  # most flavors have none: their predict_input is what runs
        np.testing.assert_array_equal(compiled(flavor.fast_input(runtime, case.table)), labels)


# -- through a workspace ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("flavor-ws")
    os.environ.setdefault("MODELCYCLE_ACTOR", "tester")
    workspace, _ = init_workspace(root / "ws", db_url=f"sqlite:///{root / 'meta.db'}")
    try:
        yield workspace
    finally:
        workspace.close()


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 (a free port), in a thread."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the scoring server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _lock_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            names.add(line.split("==")[0].lower())
    return names


def test_registry_serving_batch_and_bundle_agree(
    full_case: Case, ws: Workspace, tmp_path: Path
) -> None:
    from modelcycle.deploy import _requirements as reqs
    from modelcycle.scoring import ScoringEngine
    from modelcycle.scoring.server import create_app

    case = full_case
    name = f"contract-{case.id}"
    mv = ws.registry.register(
        case.model, name, input_example=case.table, flavor=case.flavor, trust=case.trust
    )
    assert mv.flavor == case.flavor
    loaded = ws.registry.load(mv.ref, trust=case.trust)
    expected = np.asarray(loaded.predict(case.table))
    flavor = get_flavor(case.flavor)
    np.testing.assert_array_equal(expected, _answers(case, flavor.runtime(case.model))[0])

    # The scoring server (the real app, in process) answers the same.
    engine = ScoringEngine([lambda: loaded])
    frame = case.table.to_pandas()
    body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
    engine.load()
    with _serving(create_app(engine, load_on_startup=False)) as url:
        answer = httpx.post(f"{url}/invocations", json=body, timeout=60)
    engine.close()
    assert answer.status_code == 200, answer.text
    served = np.asarray(answer.json()["predictions"])
    np.testing.assert_array_equal(served.astype(expected.dtype), expected)

    # A batch job answers the same, with the same probabilities.
    pq.write_table(case.table, tmp_path / "in.parquet")
    job = ws.batch.score(
        mv.ref,
        tmp_path / "in.parquet",
        tmp_path / "out",
        workers=1,
        proba=case.classifier,
        trust=case.trust,
    )
    assert job.status == "succeeded"
    out = pq.read_table(tmp_path / "out")
    np.testing.assert_array_equal(
        np.asarray(out.column("prediction").to_pylist(), dtype=expected.dtype), expected
    )
    if case.classifier:
        proba = loaded.predict_proba(case.table)
        first = f"proba_{loaded.signature.classes[0]}"
        np.testing.assert_array_equal(out.column(first).to_numpy(), proba[:, 0])

    # The bundle's lean lock: the closure of the flavor's requirements and the server's stack.
    info = ws.deploy.bundle(mv.ref, tmp_path / "bundle")
    assert info.manifest["model"]["file"] == f"model/model.{flavor.file_extension}"
    locked = _lock_names(tmp_path / "bundle" / "requirements.lock")
    closure = reqs.resolve([*mv.requirements, *reqs.SERVER_STACK], {})
    assert locked == {p.name.lower() for p in closure}
    for need in case.needs:
        assert need in locked, f"{need} missing from the lock of a {case.flavor} bundle"
    assert not (FLAVOR_LIBRARIES - set(case.needs)) & locked
