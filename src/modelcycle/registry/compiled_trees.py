"""Gradient-boosted trees compiled to native code, giving scikit-learn's labels exactly.

Why: ``HistGradientBoostingClassifier.predict`` walks every tree node by node in one generic
loop (about 8 µs a row for 100 trees on this project's machines); treelite turns the trees into
C with the thresholds as constants and tl2cgen builds it with the machine's C compiler (about
3-4 µs a row, measured on the reference batch). Batch jobs, which score millions of rows with
one model, pay the build once per model and machine; the library is kept in a cache folder.

Exact labels: the compiled margins are scikit-learn's sums of the same float64 leaf values in
another order (they differed by at most 4.4e-15 on a million rows). A row whose margin lies
within ``_GUARD`` of the decision (binary: of zero; several classes: between the best two) is
predicted again by scikit-learn, so every label is the one scikit-learn gives. Before it is
used, a built library must reproduce scikit-learn's margins on a fixed sample of rows; one
that does not is not used.

Nothing here is required: without treelite/tl2cgen, a C compiler, or for another kind of
model (categorical features, a regressor, whose outputs are the margins themselves and so would
not be exact), :func:`compile_labels` returns None and scikit-learn predicts as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np

__all__ = ["CompiledLabels", "compile_labels"]

_log = logging.getLogger(__name__)

# Margins closer than this to the decision are decided by scikit-learn itself (see above).
_GUARD = 1e-9
# The rows a built library must agree on with scikit-learn before it is used.
_CHECK_ROWS = 2_000


class CompiledLabels:
    """Labels for the model's own input (what ``fast_input`` built), from a compiled library.

    The library is opened in the process that first predicts (a forked batch worker opens its
    own), so building it in the parent leaves no native thread behind a ``fork``. Calls may
    come from several threads (a server's event loop and its predict thread): one at a time.
    """

    def __init__(self, estimator: Any, library: Path, *, threads: int = 1) -> None:
        self._estimator = estimator
        self._prefix, self._trees = _split(estimator)
        self._transform = _scaling(self._prefix)
        self._classes = np.asarray(self._trees.classes_)
        self.library = library
        self.threads = threads
        self._predictor: Any = None
        self._lock = threading.Lock()

    def margins(self, x: Any) -> np.ndarray:
        """The raw scores, ``(rows,)`` for two classes, ``(rows, classes)`` for more."""
        import tl2cgen

        xt = self._transform(x)
        dense = np.ascontiguousarray(np.asarray(xt, dtype=np.float64))
        with self._lock:
            if self._predictor is None:
                self._predictor = tl2cgen.Predictor(str(self.library), nthread=self.threads)
            matrix = tl2cgen.DMatrix(dense, dtype="float64")
            raw = self._predictor.predict(matrix, pred_margin=True)
        out = np.asarray(raw, dtype=np.float64).reshape(dense.shape[0], -1)
        return out[:, 0] if out.shape[1] == 1 else out

    def __call__(self, x: Any) -> np.ndarray:
        raw = self.margins(x)
        if raw.ndim == 1:
            labels = self._classes[(raw > 0).astype(np.intp)]
            close = np.abs(raw) < _GUARD
        else:
            labels = self._classes[np.argmax(raw, axis=1)]
            top2 = np.partition(raw, -2, axis=1)[:, -2:]
            close = (top2[:, 1] - top2[:, 0]) < _GUARD
        if close.any():
            rows = np.flatnonzero(close)
            subset = x.iloc[rows] if hasattr(x, "iloc") else x[rows]
            labels[rows] = self._estimator.predict(subset)
        return labels


def compile_labels(
    estimator: Any, cache_dir: Path, key: str, *, build: bool = True, threads: int = 1
) -> CompiledLabels | None:
    """A compiled predictor of ``estimator``'s labels, built once per ``key`` into
    ``cache_dir`` (the model's sha256 makes a good key); None when it cannot be had, or
    when it is not built yet and ``build`` is False (a job too small to pay for the build)."""
    if _split(estimator)[1] is None:
        return None
    toolchain = _toolchain()
    stamp = None if toolchain is None else _stamp(key, toolchain)
    if toolchain is None or stamp is None:
        return None
    try:
        library = _built(estimator, Path(cache_dir), stamp, toolchain, build=build)
        if library is None:
            return None
        compiled = CompiledLabels(estimator, library, threads=threads)
        if not _agrees(estimator, compiled):
            _log.warning("compiled trees disagree with scikit-learn on %s; not used", key)
            return None
    except Exception as exc:  # a failed build must not fail the job: scikit-learn predicts
        _log.warning("could not compile the trees of %s (%s); scikit-learn predicts", key, exc)
        return None
    return compiled


def _split(estimator: Any) -> tuple[Any, Any]:
    """(the steps before the trees or None, the boosted trees) or (None, None) if unsupported."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    prefix = None
    trees = estimator
    if isinstance(estimator, Pipeline):
        if len(estimator.steps) > 1:
            prefix = estimator[:-1]
        trees = estimator.steps[-1][1]
    if not isinstance(trees, HistGradientBoostingClassifier):
        return None, None
    categorical = getattr(trees, "is_categorical_", None)
    if categorical is not None and bool(np.any(categorical)):
        return None, None
    return prefix, trees


def _scaling(prefix: Any) -> Callable[[Any], Any]:
    """The steps before the trees as a function of the input.

    Steps that are all ``StandardScaler`` run as the same two numpy operations scikit-learn's
    ``transform`` performs (subtract ``mean_``, divide by ``scale_``, in float64, so the same
    bits) without its input validation, which costs more than the trees on one row; anything
    else runs through ``transform`` itself.
    """
    if prefix is None:
        return lambda x: x
    from sklearn.preprocessing import StandardScaler

    steps = [step for _, step in prefix.steps]
    if not all(type(step) is StandardScaler for step in steps):
        return cast(Callable[[Any], Any], prefix.transform)

    names = getattr(steps[0], "feature_names_in_", None)

    def scale(x: Any) -> Any:
        if names is not None and hasattr(x, "columns") and list(x.columns) != list(names):
            return prefix.transform(x)  # scikit-learn's own check words the mismatch
        out = np.array(x, dtype=np.float64)  # a copy, as scikit-learn's check_array makes
        for step in steps:
            if step.with_mean:
                out -= step.mean_
            if step.with_std:
                out /= step.scale_
        return out

    return scale


def _toolchain() -> str | None:
    """The C compiler tl2cgen will call, or None on a machine without one."""
    for name in ("gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def _stamp(key: str, toolchain: str) -> str | None:
    """The cache name: the model and everything that shapes the built library (None without
    treelite or tl2cgen; nothing is imported here, so a job that finds no library pays
    nothing for the look)."""
    try:
        versions = {p: metadata.version(p) for p in ("treelite", "tl2cgen")}
    except metadata.PackageNotFoundError:
        return None
    try:
        compiler = subprocess.run(
            [toolchain, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        compiler = toolchain
    parts = {
        "model": key,
        **versions,
        "compiler": compiler,
        "machine": platform.machine(),
        "python": sys.implementation.cache_tag,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _built(
    estimator: Any, cache_dir: Path, stamp: str, toolchain: str, *, build: bool
) -> Path | None:
    """The library for ``stamp``: the cached one if its sha256 still matches, else built
    (None if not cached and not ``build``).

    One process builds at a time (a file lock): two jobs starting together build it once. The
    library and its sha256 appear under their final names only when complete.
    """
    library = cache_dir / f"{stamp}.so"
    digest_file = cache_dir / f"{stamp}.so.sha256"
    if not build and not library.is_file():
        return None  # nothing to read back: no folder, no lock
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(cache_dir / f"{stamp}.lock"):
        if library.is_file() and digest_file.is_file():
            if _sha256(library) == digest_file.read_text().strip():
                return library
            _log.warning("compiled library %s changed since it was built; building again", library)
        if not build:
            return None
        import tl2cgen
        import treelite

        model = treelite.sklearn.import_model(_split(estimator)[1])  # type: ignore[no-untyped-call]
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            staged = Path(tmp) / library.name
            with _quiet_stdout():  # the builder prints its progress on file descriptor 1
                tl2cgen.export_lib(
                    model,
                    toolchain=toolchain,
                    libpath=str(staged),
                    params={"parallel_comp": os.cpu_count() or 1},
                    nthread=os.cpu_count() or 1,
                    # -O1 builds in ~30% less time than the default, and predicted as fast
                    # (100 trees, 200,000 rows: 5.0 s / 1.00 s against 7.2 s / 0.98 s)
                    options=["-O1"],
                )
            digest = _sha256(staged)
            os.replace(staged, library)
        tmp_digest = digest_file.with_suffix(".tmp")
        tmp_digest.write_text(digest + "\n")
        os.replace(tmp_digest, digest_file)
    return library


def _agrees(estimator: Any, compiled: CompiledLabels) -> bool:
    """Same margins as scikit-learn (to the guard) on a fixed sample, missing values included."""
    trees = _split(estimator)[1]
    rng = np.random.default_rng(20261201)
    n_features = int(trees.n_features_in_)
    x = rng.normal(size=(_CHECK_ROWS, n_features)) * rng.choice([0.1, 1.0, 10.0], n_features)
    x[rng.random(x.shape) < 0.05] = np.nan
    # Compare on the trees' own input: the steps before are scikit-learn's either way.
    ours = CompiledLabels(trees, compiled.library, threads=compiled.threads).margins(x)
    theirs = np.asarray(trees.decision_function(x), dtype=np.float64)
    return bool(ours.shape == theirs.shape and np.all(np.abs(ours - theirs) < _GUARD))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 sent to /dev/null for the duration: a command's stdout may be JSON,
    and a failed build raises with its own message."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
