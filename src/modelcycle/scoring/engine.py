"""The transport-neutral scoring core: loaded model versions, validation, micro-batched predict.

A :class:`ScoringEngine` is built from loaded models or from callables that load them; its
constructor does no I/O. :meth:`ScoringEngine.load` loads, limits the models' native threads and
warms them up; only then is it ready. :meth:`ScoringEngine.score` validates one request's table
against the version's signature (so one bad request never fails another), then hands it to the
version's :class:`~modelcycle.scoring.batcher.MicroBatcher`, which merges concurrent requests
into one ``predict`` call and splits the answer back per caller (see :mod:`.batcher` for when
batches form and where they run).

A version whose inputs are all numeric and whose model takes plain arrays also has a
:class:`~modelcycle.scoring.fastpath.NumericFastPath`: :meth:`ScoringEngine.score_array` takes
rows it decoded and checked, and predicts them in batches of arrays, without Arrow or pandas.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from modelcycle.errors import InvalidInput, NotFound, NotReady
from modelcycle.registry import LoadedModel, Signature, SignatureMismatch, enforce
from modelcycle.scoring._coerce import recover
from modelcycle.scoring._metrics import slot_stats
from modelcycle.scoring.batcher import BATCH_SIZE_BUCKETS, MicroBatcher, SlotStats, concat_arrays
from modelcycle.scoring.fastpath import NumericFastPath

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "MicroBatcher",
    "ModelSlot",
    "ScoreResult",
    "ScoringEngine",
    "SlotStats",
]

_log = logging.getLogger(__name__)

ModelSource = LoadedModel | Callable[[], LoadedModel]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """One request's answer and the version that produced it."""

    model_name: str
    model_version: int
    predictions: np.ndarray | None
    probabilities: np.ndarray | None
    classes: list[Any] | None
    inputs: pa.Table | None = None  # the validated request rows (for the prediction log)
    array: np.ndarray | None = None  # the same, when the fast path read them (inputs is None)
    input_names: tuple[str, ...] = ()  # the array's columns


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    first = tables[0]
    # Tables passed enforce, so their columns have the signature's types; field nullability
    # flags may differ, which pa.concat_tables would refuse.
    columns = [
        pa.chunked_array(
            [chunk for t in tables for chunk in t.column(i).chunks], type=first.schema.field(i).type
        )
        for i in range(first.num_columns)
    ]
    return pa.Table.from_arrays(columns, names=first.column_names)


class ModelSlot:
    """One served model version: its loaded model, its batchers (predict, predict_proba), stats."""

    def __init__(
        self,
        model: LoadedModel,
        executor: ThreadPoolExecutor,
        *,
        max_batch_rows: int,
        max_wait_ms: float,
        compiled_cache: Path | None = None,
    ) -> None:
        self.model = model
        self.name = model.version.name
        self.version = model.version.version
        self.signature: Signature = model.signature
        # Column -> signature type, for the decoders' wording of a bad value.
        self.input_types = {c.name: c.type for c in self.signature.inputs}
        self.input_names = tuple(self.signature.input_names)
        # In the server's metric files when it has some (summed over its workers).
        self.stats = slot_stats(self.name, self.version)
        opts: dict[str, Any] = {
            "max_batch_rows": max_batch_rows,
            "max_wait_ms": max_wait_ms,
            "stats": self.stats,
        }
        # Each request was enforced against the signature before it joined the batch.
        self._predict: MicroBatcher[pa.Table] = MicroBatcher(
            partial(model.predict, validated=True), executor, concat=_concat, **opts
        )
        self._proba: MicroBatcher[pa.Table] = MicroBatcher(
            partial(model.predict_proba, validated=True), executor, concat=_concat, **opts
        )
        # All-numeric inputs and a model that takes arrays: requests may skip Arrow and pandas.
        self.fast = NumericFastPath.for_model(model)
        self._fast: MicroBatcher[np.ndarray] | None = None
        if self.fast is not None:
            self._fast = MicroBatcher(self.fast.predict, executor, concat=concat_arrays, **opts)
            if compiled_cache is not None:
                self.fast.compile_in_background(model, compiled_cache)

    def __repr__(self) -> str:
        return f"ModelSlot({self.name}/{self.version})"

    @property
    def flavor(self) -> str:
        return self.model.flavor.name

    @property
    def predictor(self) -> str:
        """What answers an all-numeric request: ``compiled-trees`` (fastpath.py),
        ``numeric-arrays`` (the flavor's array predictor), or ``tables`` (the general path)."""
        if self.fast is None:
            return "tables"
        return "compiled-trees" if self.fast.compiled else "numeric-arrays"

    @property
    def queue_depth(self) -> int:
        fast = self._fast.queue_depth if self._fast is not None else 0
        return self._predict.queue_depth + self._proba.queue_depth + fast

    async def predict(self, table: pa.Table) -> np.ndarray:
        return await self._predict.submit(table, table.num_rows)

    async def predict_proba(self, table: pa.Table) -> np.ndarray:
        return await self._proba.submit(table, table.num_rows)

    async def predict_array(self, rows: np.ndarray) -> np.ndarray:
        """Predictions for rows the fast path decoded (only when :attr:`fast` is set)."""
        assert self._fast is not None
        return await self._fast.submit(rows, len(rows))


class ScoringEngine:
    """Model versions served by name (and version): validate, batch, predict, answer.

    ``models`` are :class:`~modelcycle.registry.LoadedModel` objects or zero-argument callables
    returning one (called by :meth:`load`). For each name, the first version given is the one
    answering requests that name no version.
    """

    def __init__(
        self,
        models: Sequence[ModelSource],
        *,
        max_batch_rows: int = 64,
        max_wait_ms: float = 2.0,
        max_rows_per_request: int = 10_000,
        native_threads: int | None = 1,
        predict_threads: int = 1,
        canary: Mapping[str, Sequence[tuple[int, float]]] | None = None,
        shadow: Mapping[str, Sequence[tuple[int, float]]] | None = None,
        compiled_cache: Path | None = None,
    ) -> None:
        if not models:
            raise InvalidInput("give at least one model to serve", field="models")
        for value, name, low in (
            (max_batch_rows, "max_batch_rows", 1),
            (max_rows_per_request, "max_rows_per_request", 1),
            (predict_threads, "predict_threads", 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInput(f"must be an integer >= {low}, got {value!r}", field=name)
        if not 0 <= max_wait_ms <= 1000:
            raise InvalidInput(
                f"must be within [0, 1000], got {max_wait_ms!r}", field="max_wait_ms"
            )
        if native_threads is not None and native_threads < 1:
            raise InvalidInput(f"must be >= 1 or None, got {native_threads!r}", field="threads")
        self._sources = list(models)
        self.canary = _check_split(canary, "canary", total=100.0)
        self.shadow = _check_split(shadow, "shadow", total=None)
        self.max_batch_rows = max_batch_rows
        self.max_wait_ms = float(max_wait_ms)
        self.max_rows_per_request = max_rows_per_request
        self.native_threads = native_threads
        self._predict_threads = predict_threads
        # Where the fast path's compiled trees are kept (None: never compile; fastpath.py).
        self._compiled_cache = compiled_cache
        self._slots: dict[tuple[str, int], ModelSlot] = {}
        self._default: dict[str, ModelSlot] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._ready = False
        self.load_error: BaseException | None = None
        self.native_thread_info: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        state = "ready" if self._ready else "not loaded"
        return f"ScoringEngine({len(self._sources)} model(s), {state})"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    def load(self) -> None:
        """Load every model, limit native threads, warm up; then the engine is ready.

        Safe to call twice (the second call does nothing). A failure is kept in
        :attr:`load_error` and raised.
        """
        with self._lock:
            if self._ready:
                return
            try:
                self._load()
            except BaseException as exc:
                self.load_error = exc
                raise

    def _load(self) -> None:
        loaded = [src if isinstance(src, LoadedModel) else src() for src in self._sources]
        executor = ThreadPoolExecutor(
            max_workers=self._predict_threads,
            thread_name_prefix="modelcycle-predict",
            initializer=_limit_native_threads,
            initargs=(self.native_threads,),
        )
        slots: dict[tuple[str, int], ModelSlot] = {}
        default: dict[str, ModelSlot] = {}
        for model in loaded:
            slot = ModelSlot(
                model,
                executor,
                max_batch_rows=self.max_batch_rows,
                max_wait_ms=self.max_wait_ms,
                compiled_cache=self._compiled_cache,
            )
            key = (slot.name, slot.version)
            if key in slots:
                continue  # the same version named twice (e.g. by alias and by number)
            slots[key] = slot
            default.setdefault(slot.name, slot)
        _limit_native_threads(self.native_threads)
        # Runs in the predict thread: the OpenMP limit is per thread, and this is where it counts.
        self.native_thread_info = executor.submit(_native_info).result()
        for slot in slots.values():
            executor.submit(_warm_up, slot.model).result()
        self._executor = executor
        self._slots = slots
        self._default = default
        self._ready = True

    def limit_native_threads_here(self) -> None:
        """Cap native threads in the calling thread too: the event loop's, where a lone small
        request is scored without the hop to the predict thread (the OpenMP cap is per
        thread)."""
        _limit_native_threads(self.native_threads)

    def close(self) -> None:
        """Stop the predict thread(s); the engine is no longer ready."""
        self._ready = False
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    # -- lookup -----------------------------------------------------------------------------

    def slots(self) -> list[ModelSlot]:
        """The served versions, in the order given."""
        return list(self._slots.values())

    def names(self) -> list[str]:
        return list(self._default)

    def get(self, name: str, version: int | str | None = None) -> ModelSlot:
        """The slot for ``name`` (and ``version``); NotReady before load, NotFound if not served."""
        if not self._ready:
            raise NotReady("the models are still loading; try again shortly")
        if version is None or version == "":
            slot = self._default.get(name)
        else:
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"{version!r} is not a version number", field="version"
                ) from None
            slot = self._slots.get((name, number))
        if slot is None:
            served = ", ".join(f"{s.name}/{s.version}" for s in self._slots.values())
            what = name if version in (None, "") else f"{name}/{version}"
            raise NotFound(f"model {what!r} is not served here (served: {served})")
        return slot

    # -- scoring ----------------------------------------------------------------------------

    def validate(self, slot: ModelSlot, table: pa.Table) -> pa.Table:
        """``table`` checked against the slot's signature and the row limit."""
        if table.num_rows > self.max_rows_per_request:
            raise InvalidInput(
                f"{table.num_rows} rows is more than the {self.max_rows_per_request} allowed per "
                "request; split the request",
                field="rows",
            )
        if table.num_rows == 0:
            raise InvalidInput("the request holds no rows", field="rows")
        try:
            return enforce(slot.signature, table)
        except SignatureMismatch as refused:
            # Off the hot path: integral floats for integer columns, clearer type problems.
            return recover(slot.signature, table, refused)

    async def score(
        self,
        name: str,
        version: int | str | None,
        table: pa.Table,
        *,
        predict: bool = True,
        proba: bool = False,
    ) -> ScoreResult:
        """Validate ``table`` for the version, then predict (and/or predict_proba) in a batch."""
        slot = self.get(name, version)
        return await self.score_slot(slot, table, predict=predict, proba=proba)

    async def score_slot(
        self, slot: ModelSlot, table: pa.Table, *, predict: bool = True, proba: bool = False
    ) -> ScoreResult:
        """:meth:`score` for an already resolved slot."""
        if proba and not slot.signature.is_classifier:
            raise InvalidInput(
                f"{slot.name}/{slot.version} is a {slot.signature.task} model; only classifiers "
                "give probabilities",
                field="probabilities",
            )
        slot.stats.requests += 1
        try:
            checked = self.validate(slot, table)
            slot.stats.rows += checked.num_rows
            if predict and proba:
                predictions, probabilities = await asyncio.gather(
                    slot.predict(checked), slot.predict_proba(checked)
                )
            elif proba:
                predictions, probabilities = None, await slot.predict_proba(checked)
            else:
                predictions, probabilities = await slot.predict(checked), None
        except BaseException:
            slot.stats.failed_requests += 1
            raise
        return ScoreResult(
            slot.name,
            slot.version,
            predictions,
            probabilities,
            slot.signature.classes,
            checked,
        )

    async def score_array(self, slot: ModelSlot, rows: np.ndarray) -> ScoreResult:
        """:meth:`score_slot` (predict only) for rows the slot's fast path decoded and checked."""
        slot.stats.requests += 1
        try:
            slot.stats.rows += len(rows)
            predictions = await slot.predict_array(rows)
        except BaseException:
            slot.stats.failed_requests += 1
            raise
        classes = slot.signature.classes
        return ScoreResult(
            slot.name, slot.version, predictions, None, classes, None, rows, slot.input_names
        )

    def stats(self) -> Mapping[tuple[str, int], SlotStats]:
        return {key: slot.stats for key, slot in self._slots.items()}

    # -- traffic: canary split and shadow ----------------------------------------------------

    def route(self, name: str, version: int | str | None = None) -> ModelSlot:
        """The slot answering a request: ``version`` when given, else by the canary weights.

        ``canary`` maps a name to ``[(version, percent), ...]``: each listed version answers
        that share of the requests naming no version, the default version the rest.
        """
        if version not in (None, "") or name not in self.canary:
            return self.get(name, version)
        draw = random.random() * 100.0  # noqa: S311 - a traffic split, not a secret
        for number, percent in self.canary[name]:
            if draw < percent:
                slot = self._slots.get((name, number))
                if slot is not None and slot is not self._default.get(name):
                    return slot
                break
            draw -= percent
        return self.get(name)

    def shadows(self, slot: ModelSlot) -> list[ModelSlot]:
        """The versions that get a mirrored copy of a request ``slot`` answered (by share)."""
        out: list[ModelSlot] = []
        for number, percent in self.shadow.get(slot.name, ()):
            if number == slot.version:
                continue
            if percent >= 100.0 or random.random() * 100.0 < percent:  # noqa: S311
                shadow = self._slots.get((slot.name, number))
                if shadow is not None:
                    out.append(shadow)
        return out

    # -- hot swap ----------------------------------------------------------------------------

    def swap_default(self, model: LoadedModel) -> ModelSlot:
        """Make ``model`` the version answering its name, swapped in atomically.

        The new slot is built and warmed up first (call this from a thread: it predicts once);
        then one assignment publishes it. Requests already holding the old slot finish on it;
        the old version stays addressable by number only if it is a canary or shadow version.
        """
        if not self._ready or self._executor is None:
            raise NotReady("the engine is not loaded")
        name, number = model.version.name, model.version.version
        with self._lock:
            existing = self._slots.get((name, number))
            if existing is not None:
                slot = existing
            else:
                slot = ModelSlot(
                    model,
                    self._executor,
                    max_batch_rows=self.max_batch_rows,
                    max_wait_ms=self.max_wait_ms,
                    compiled_cache=self._compiled_cache,
                )
                self._executor.submit(_warm_up, model).result()
            old = self._default.get(name)
            keep = {v for v, _ in (*self.canary.get(name, ()), *self.shadow.get(name, ()))}
            slots = dict(self._slots)
            slots[(name, number)] = slot
            if old is not None and old is not slot and old.version not in keep:
                del slots[(name, old.version)]
            default = dict(self._default)
            default[name] = slot
            # Readers look up one dict each; a request between the two sees either version.
            self._slots = slots
            self._default = default
        return slot


def _check_split(
    split: Mapping[str, Sequence[tuple[int, float]]] | None, field: str, *, total: float | None
) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for name, parts in (split or {}).items():
        checked = []
        for version, percent in parts:
            if not 0.0 < float(percent) <= 100.0:
                raise InvalidInput(
                    f"{name}/{version}: the share must be within (0, 100] percent, got {percent}",
                    field=field,
                )
            checked.append((int(version), float(percent)))
        if total is not None and sum(p for _, p in checked) > total:
            raise InvalidInput(
                f"{name}: the canary shares add up to more than {total:g} percent", field=field
            )
        out[name] = checked
    return out


def _limit_native_threads(limit: int | None) -> None:
    """Cap OpenMP/BLAS threads in the calling thread (and BLAS process-wide): with one worker
    process per core, native thread pools per process oversubscribe the cores and stall."""
    if limit is None:
        return
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(limits=limit)


def _native_info() -> list[dict[str, Any]]:
    from threadpoolctl import threadpool_info

    return [
        {"api": str(i.get("user_api")), "num_threads": int(i.get("num_threads", 0))}
        for i in threadpool_info()
    ]


_WARM_VALUES: dict[str, Any] = {"string": "", "binary": b"", "bool": False}


def _warm_up(model: LoadedModel) -> None:
    """One prediction on a made-up row, so the first request does not pay for lazy setup."""
    try:
        columns = {
            c.name: pa.array([_WARM_VALUES.get(c.type, 0)]).cast(pa.type_for_alias(c.type))
            for c in model.signature.inputs
        }
        model.predict(pa.table(columns))
    except Exception as exc:  # a made-up row may well be refused; warming up is optional
        _log.debug("warm-up of %s skipped: %s", model.version.ref, exc)
