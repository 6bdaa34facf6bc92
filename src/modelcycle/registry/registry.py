"""The model registry: versions, aliases, archive, safe load, promotion gates and lineage.

Version numbers and alias moves are serialised per model by locking its ``registered_models``
row inside the write transaction (SQLite serialises every writer with BEGIN IMMEDIATE
already), so two processes never take the same number or lose a move; each change commits
with its audit event.
"""

from __future__ import annotations

import builtins
import io
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy import delete as sql_delete

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.datasets import DatasetCatalog
from modelcycle.entities import DatasetVersion, ModelVersion
from modelcycle.errors import Conflict, InvalidInput, NotFound
from modelcycle.names import validate_name
from modelcycle.registry._checks import (
    ACTIVE,
    ARCHIVED,
    check_alias,
    check_precondition,
    split_dataset_ref,
)
from modelcycle.registry.errors import UntrustedModel
from modelcycle.registry.flavors import ModelFlavor, detect_flavor, get_flavor
from modelcycle.registry.lineage import RegistryLineage
from modelcycle.registry.loaded import LoadedModel
from modelcycle.registry.notes import RegistryNotes
from modelcycle.registry.promotion import RegistryPromotion
from modelcycle.registry.refs import LATEST, ModelRef, parse_model_ref
from modelcycle.registry.signature import Signature, enforce, to_arrow
from modelcycle.store import ArtifactStore, MetadataStore, tables

if TYPE_CHECKING:
    from modelcycle.registry.approvals import PromotionApprovals

__all__ = ["ModelRegistry"]

_EXAMPLE_ROWS = 1000


class ModelRegistry(RegistryNotes, RegistryPromotion, RegistryLineage):
    """Registered models of one workspace. Constructing it touches nothing."""

    # Set by the workspace: under a [promotion.*] policy an alias move becomes a request.
    approvals: PromotionApprovals | None = None

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        actor: str,
        datasets: DatasetCatalog | None = None,
    ) -> None:
        self._meta = metadata
        self._artifacts = artifacts
        self._actor = actor
        self._datasets = datasets

    # -- registering ------------------------------------------------------------------------

    def register(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        signature: Signature | Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        datasets: Iterable[str | DatasetVersion] = (),
        run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        flavor: str | None = None,
        trust: bool = False,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return that version."""
        name = validate_name(name, field="name")
        if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= 64):
            raise InvalidInput("must be text of 1 to 64 characters", field="run_id")
        flv = get_flavor(flavor) if flavor is not None else detect_flavor(model)
        flv.check_trust(trust, "a model")
        blob = flv.save(model)
        if not trust:
            # Refuse now, not at load time: a version nobody can load safely is no use.
            refused = flv.untrusted_types(blob)
            if refused:
                raise UntrustedModel(
                    f"the model holds types that are not trusted: {', '.join(sorted(refused))}; "
                    "register it with trust=True (--trust) only if you trust its code",
                    types=sorted(refused),
                )
        sig = self._signature_for(flv, model, signature, input_example)
        example_sha = None
        if input_example is not None:
            example_sha = self._artifacts.put_bytes(_parquet(to_arrow(input_example))).sha256
        return self._insert_version(
            name,
            flv,
            blob,
            sig,
            requirements=flv.requirements(model),
            metrics=_check_metrics(metrics or {}),
            params=_check_json(dict(params or {}), "params"),
            # The flavor's own tags (e.g. a python-model's code_sha256) cannot be overridden.
            tags={**_check_tags(tags or {}), **flv.version_tags(model)},
            datasets=self._resolve_datasets(datasets),
            run_id=run_id,
            example_sha256=example_sha,
        )

    def register_file(
        self,
        path: str,
        name: str,
        *,
        flavor: str,
        trust: bool = False,
        **kwargs: Any,
    ) -> ModelVersion:
        """Register a model saved in a file of the flavor's format (see ``file_extension``)."""
        flv = get_flavor(flavor)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            raise NotFound(f"no such file: {path}") from None
        except IsADirectoryError:
            raise InvalidInput("is a folder, expected a model file", field=str(path)) from None
        flv.check_trust(trust, str(path))
        try:
            model = flv.from_file(data, trust=trust)
        except InvalidInput as exc:
            raise InvalidInput(exc.message.removeprefix("model: "), field=str(path)) from exc
        return self.register(model, name, flavor=flavor, trust=trust, **kwargs)

    def _signature_for(
        self,
        flv: ModelFlavor,
        model: Any,
        given: Signature | Mapping[str, Any] | None,
        example: Any,
    ) -> Signature:
        if isinstance(given, Signature):
            return given
        if given is not None:
            return Signature.from_dict(dict(given))
        if example is None:
            raise InvalidInput(
                "pass input_example (a few rows of what the model takes) or a signature",
                field="input_example",
            )
        table = to_arrow(example, field="input_example")
        hints = flv.signature_hints(model)
        try:
            predictions = flv.predict(flv.runtime(model), table)
        except (
            Exception
        ) as exc:  # whatever the model raises on its own example is the user's to see
            raise InvalidInput(
                f"the model cannot predict on its input example ({type(exc).__name__}: {exc})",
                field="input_example",
            ) from exc
        return Signature.infer(
            table,
            predictions=predictions,
            task=hints.task,
            classes=hints.classes,
            probabilities=hints.classes is not None,
        )

    def _resolve_datasets(self, datasets: Iterable[str | DatasetVersion]) -> list[str]:
        out: list[str] = []
        for item in datasets:
            if isinstance(item, DatasetVersion):
                out.append(item.ref)
                continue
            ds_name, ds_version = split_dataset_ref(item)
            if self._datasets is not None:
                ds_version = self._datasets.version(ds_name, ds_version).version
            out.append(f"{ds_name}@{ds_version}")
        return out

    def _insert_version(
        self,
        name: str,
        flv: ModelFlavor,
        blob: bytes,
        sig: Signature,
        *,
        requirements: list[str],
        metrics: dict[str, float],
        params: dict[str, Any],
        tags: dict[str, str],
        datasets: list[str],
        run_id: str | None,
        example_sha256: str | None,
    ) -> ModelVersion:
        ref = self._artifacts.put_bytes(blob)
        now = utc_timestamp()
        row: dict[str, Any] = {
            "name": name,
            "sha256": ref.sha256,
            "flavor": flv.name,
            "signature": canonical_json(sig.as_dict()),
            "metrics": canonical_json(metrics),
            "params": canonical_json(params),
            "tags": canonical_json(tags),
            "datasets": canonical_json(datasets),
            "requirements": canonical_json(requirements),
            "run_id": run_id,
            "example_sha256": example_sha256,
            "status": ACTIVE,
            "created_at": now,
            "created_by": self._actor,
        }
        with self._meta.write(
            actor=self._actor,
            action="model.version_registered",
            subject=f"model:{name}",
            payload={
                "sha256": ref.sha256,
                "size": ref.size,
                "flavor": flv.name,
                "metrics": metrics,
                "datasets": datasets,
                "run_id": run_id,
                "tags": tags,
            },
        ) as tx:
            created = _ensure_model(tx.conn, name, now, self._actor)
            _lock_model(tx.conn, name)
            t = tables.model_versions
            top = tx.conn.execute(select(func.max(t.c.version)).where(t.c.name == name)).scalar()
            row["version"] = int(top or 0) + 1
            tx.conn.execute(insert(t).values(**row))
            _index_artifact(
                tx.conn, ref.sha256, ref.size, f"model {name}/{row['version']}", now, self._actor
            )
            tx.subject = f"model:{name}/{row['version']}"
            tx.payload["version"] = row["version"]
            tx.payload["new_model"] = created
        return _to_version(row, ())

    # -- reading ----------------------------------------------------------------------------

    def get(self, ref: str) -> ModelVersion:
        """The version ``NAME/3``, ``NAME@alias`` or ``NAME@latest`` points at, with its aliases."""
        parsed = parse_model_ref(ref)
        with self._meta.read() as conn:
            return self._get(conn, parsed)

    def _get(self, conn: Connection, ref: ModelRef) -> ModelVersion:
        t = tables.model_versions
        version = ref.version
        if ref.alias == LATEST:
            version = conn.execute(
                select(func.max(t.c.version)).where(t.c.name == ref.name, t.c.status == ACTIVE)
            ).scalar()
            if version is None:
                self._require_model(conn, ref.name)
                raise NotFound(f"model {ref.name!r} has no active version")
        elif ref.alias is not None:
            a = tables.model_aliases
            version = conn.execute(
                select(a.c.version).where(a.c.name == ref.name, a.c.alias == ref.alias)
            ).scalar()
            if version is None:
                self._require_model(conn, ref.name)
                raise NotFound(f"model {ref.name!r} has no alias {ref.alias!r}")
        row = conn.execute(select(t).where(t.c.name == ref.name, t.c.version == version)).first()
        if row is None:
            self._require_model(conn, ref.name)
            raise NotFound(f"model {ref.name!r} has no version {version}")
        return _to_version(dict(row._mapping), _aliases_of(conn, ref.name, int(row.version)))

    @staticmethod
    def _require_model(conn: Connection, name: str) -> None:
        m = tables.registered_models
        if conn.execute(select(m.c.name).where(m.c.name == name)).first() is None:
            raise NotFound(f"no model named {name!r}")

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        """Every version (of ``name``, if given), by name then version."""
        t = tables.model_versions
        a = tables.model_aliases
        query = select(t).order_by(t.c.name, t.c.version)
        alias_query = select(a)
        if name is not None:
            validate_name(name, field="name")
            query = query.where(t.c.name == name)
            alias_query = alias_query.where(a.c.name == name)
        with self._meta.read(snapshot=True) as conn:
            if name is not None:
                self._require_model(conn, name)
            rows = conn.execute(query).all()
            aliases: dict[tuple[str, int], builtins.list[str]] = {}
            for al in conn.execute(alias_query.order_by(a.c.alias)).all():
                aliases.setdefault((al.name, int(al.version)), []).append(al.alias)
        return [
            _to_version(dict(r._mapping), tuple(aliases.get((r.name, int(r.version)), [])))
            for r in rows
        ]

    # -- aliases and archive ----------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``NAME@alias`` at ``version`` (set or move), atomically and audited."""
        name = validate_name(name, field="name")
        alias = check_alias(alias)
        if self.approvals is not None:
            self.approvals.refuse_direct_move(alias)
        with self._meta.write(
            actor=self._actor,
            action="model.alias_moved",
            subject=f"model:{name}/{version}",
            payload={"alias": alias, "from": None, "to": version},
        ) as tx:
            tx.payload["from"] = self._move_alias(tx.conn, name, alias, version)
        return self.get(f"{name}/{version}")

    def _move_alias(self, conn: Connection, name: str, alias: str, version: int) -> int | None:
        """Within a write: lock the model, check the target, move; return the old version."""
        if not _lock_model(conn, name):
            raise NotFound(f"no model named {name!r}")
        target = self._get(conn, ModelRef(name, version=int(version)))
        if target.status == ARCHIVED:
            raise Conflict(f"{target.ref} is archived and cannot take the alias {alias!r}")
        a = tables.model_aliases
        old = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
        stamp = {
            "version": target.version,
            "updated_at": utc_timestamp(),
            "updated_by": self._actor,
        }
        if old is None:
            conn.execute(insert(a).values(name=name, alias=alias, **stamp))
        else:
            conn.execute(update(a).where(a.c.name == name, a.c.alias == alias).values(**stamp))
        return int(old) if old is not None else None

    def delete_alias(self, name: str, alias: str, *, if_version: int | None = None) -> int:
        """Remove ``NAME@alias``; return the version it pointed at (with ``if_version``,
        PreconditionFailed unless it still points there)."""
        name = validate_name(name, field="name")
        alias = check_alias(alias)
        a = tables.model_aliases
        with self._meta.write(
            actor=self._actor,
            action="model.alias_deleted",
            subject=f"model:{name}",
            payload={"alias": alias, "to": None},
        ) as tx:
            if not _lock_model(tx.conn, name):
                raise NotFound(f"no model named {name!r}")
            old = tx.conn.execute(
                select(a.c.version).where(a.c.name == name, a.c.alias == alias)
            ).scalar()
            if old is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            check_precondition(name, alias, int(old), if_version)
            tx.conn.execute(sql_delete(a).where(a.c.name == name, a.c.alias == alias))
            tx.subject = f"model:{name}/{old}"
            tx.payload["from"] = int(old)
        return int(old)

    def archive(self, ref: str) -> ModelVersion:
        """Mark a version archived: it can no longer take an alias or be loaded for serving."""
        parsed = parse_model_ref(ref)
        with self._meta.write(
            actor=self._actor, action="model.version_archived", subject=f"model:{parsed}"
        ) as tx:
            _lock_model(tx.conn, parsed.name)
            mv = self._get(tx.conn, parsed)
            if mv.status == ARCHIVED:
                raise Conflict(f"{mv.ref} is already archived")
            if mv.aliases:
                raise Conflict(
                    f"{mv.ref} is the target of alias(es) {', '.join(mv.aliases)}; "
                    "move or delete them first"
                )
            t = tables.model_versions
            tx.conn.execute(
                update(t)
                .where(t.c.name == mv.name, t.c.version == mv.version)
                .values(status=ARCHIVED)
            )
            tx.subject = f"model:{mv.ref}"
        return self.get(mv.ref)

    # -- loading ----------------------------------------------------------------------------

    def load(self, ref: str, *, trust: bool = False) -> LoadedModel:
        """The model behind ``ref``, its blob verified against its sha256 before loading."""
        mv = self.get(ref)
        if mv.status == ARCHIVED:
            raise Conflict(f"{mv.ref} is archived and cannot be loaded for use")
        return self._load_version(mv, trust=trust)

    def _load_version(self, mv: ModelVersion, *, trust: bool) -> LoadedModel:
        flv = get_flavor(mv.flavor)
        data = self._artifacts.get_bytes(mv.sha256)  # IntegrityError if the blob was altered
        model = flv.load(data, trust=trust)
        return LoadedModel(mv, Signature.from_dict(mv.signature), flv, model)

    def input_example(self, ref: str) -> pa.Table | None:
        """The rows stored as the version's input example, if any."""
        mv = self.get(ref)
        if mv.example_sha256 is None:
            return None
        return pq.read_table(io.BytesIO(self._artifacts.get_bytes(mv.example_sha256)))

    # -- promotion --------------------------------------------------------------------------

    # -- conversion -------------------------------------------------------------------------

    def export_onnx(
        self, ref: str, *, on: str | None = None, target: str | None = None
    ) -> ModelVersion:
        """Convert a scikit-learn version to ONNX and register it as a new version, after
        checking that both give the same answers on the holdout (or the input example)."""
        from modelcycle.registry._onnx_export import check_agreement

        source = self.get(ref)
        if not get_flavor(source.flavor).converts_to_onnx:
            raise InvalidInput(
                f"{source.ref} is stored as {source.flavor}; only scikit-learn (skops) versions "
                "convert to ONNX",
                field="model",
            )
        original = self._load_version(source, trust=False)
        if on or source.tags.get("holdout"):
            where, table, target_col = self._holdout(source, on, target)
            check_rows = table.drop_columns([target_col])
        else:
            example = self.input_example(source.ref)
            if example is None:
                raise InvalidInput(
                    f"{source.ref} has neither a holdout nor an input example to check the "
                    "conversion on; pass on='DATASET@VERSION' and target='COLUMN'",
                    field="on",
                )
            where, check_rows = f"the input example of {source.ref}", example
        features = enforce(original.signature, check_rows, allow_extra=True)
        proto = original.flavor.to_onnx(original.model, original.signature)
        onnx_flavor = get_flavor("onnx")
        session = onnx_flavor.load(onnx_flavor.save(proto))
        check_agreement(original, onnx_flavor, session, features, where)
        return self._insert_version(
            source.name,
            onnx_flavor,
            onnx_flavor.save(proto),
            original.signature,
            requirements=onnx_flavor.requirements(proto),
            metrics=source.metrics,
            params=source.params,
            tags={**source.tags, "converted_from": source.ref},
            datasets=source.datasets,
            run_id=source.run_id,
            example_sha256=source.example_sha256,
        )


# -- helpers ------------------------------------------------------------------------------------


def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(value, int | float | np.number) or isinstance(value, bool):
            raise InvalidInput(f"must be a number, got {value!r}", field=f"metrics.{key}")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInput("must be finite", field=f"metrics.{key}")
        out[str(key)] = number
    return out


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(f"tags are text: {key!r}={value!r}", field="tags")
        out[key] = value
    return out


def _check_json(value: dict[str, Any], field: str) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = json.loads(canonical_json(value))
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field=field) from exc
    return parsed


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table.slice(0, _EXAMPLE_ROWS), sink)
    return sink.getvalue()


def _ensure_model(conn: Connection, name: str, now: str, actor: str) -> bool:
    """Create the model's row unless it exists (racing creators both succeed); True if made."""
    m = tables.registered_models
    values = {"name": name, "created_at": now, "created_by": actor}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        result = conn.execute(pg_insert(m).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        result = conn.execute(sqlite_insert(m).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


def _lock_model(conn: Connection, name: str) -> bool:
    """Lock the model's row until the transaction ends; False if there is no such model."""
    m = tables.registered_models
    return (
        conn.execute(select(m.c.name).where(m.c.name == name).with_for_update()).first() is not None
    )


def _index_artifact(
    conn: Connection, sha256: str, size: int, label: str, now: str, actor: str
) -> None:
    a = tables.artifacts
    if conn.execute(select(a.c.sha256).where(a.c.sha256 == sha256)).first() is None:
        conn.execute(
            insert(a).values(
                sha256=sha256, size=size, label=label, created_at=now, created_by=actor
            )
        )


def _aliases_of(conn: Connection, name: str, version: int) -> tuple[str, ...]:
    a = tables.model_aliases
    rows = conn.execute(
        select(a.c.alias).where(a.c.name == name, a.c.version == version).order_by(a.c.alias)
    ).all()
    return tuple(r.alias for r in rows)


def _to_version(row: dict[str, Any], aliases: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        sha256=row["sha256"],
        flavor=row["flavor"],
        signature=json.loads(row["signature"]),
        metrics=json.loads(row["metrics"]),
        params=json.loads(row["params"]),
        tags=json.loads(row["tags"]),
        datasets=json.loads(row["datasets"]),
        requirements=json.loads(row["requirements"]),
        run_id=row["run_id"],
        status=row["status"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        aliases=aliases,
        example_sha256=row.get("example_sha256"),
    )
