"""The data set catalog: named data sets, each a list of immutable versions 1, 2, 3 ...

A version is new only when the content changed: :meth:`DatasetCatalog.add` hashes the rows and
schema (see ``_ingest``), and adding content the name already holds returns that version with
nothing written. Content is stored as Parquet in the artifact store; the row in
``dataset_versions`` and its ``dataset.version_created`` audit event commit together.
"""

from __future__ import annotations

import builtins
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Row, func, insert, select

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.datasets._ingest import Staged, open_source, stage
from modelcycle.datasets.diff import DatasetDiff, diff_versions
from modelcycle.datasets.profile import compute_profile
from modelcycle.datasets.schema import ColumnSpec, schema_to_json
from modelcycle.entities import DatasetVersion
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.names import validate_name
from modelcycle.store import ArtifactStore, MetadataStore, tables

__all__ = ["AddResult", "DatasetCatalog", "DatasetRef", "parse_dataset_ref"]

_REF_RE = re.compile(r"^(?P<name>[^@]+)(@(?P<version>[^@]*))?$")
_MAX_DESCRIPTION = 2000


class DatasetRef(NamedTuple):
    """A parsed ``NAME``, ``NAME@latest`` or ``NAME@VERSION``; ``version`` None means latest."""

    name: str
    version: int | None

    def __str__(self) -> str:
        return f"{self.name}@{'latest' if self.version is None else self.version}"


def parse_dataset_ref(ref: str, *, field: str = "ref") -> DatasetRef:
    """Parse ``NAME``, ``NAME@latest`` or ``NAME@3``; anything else is InvalidInput."""
    match = _REF_RE.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise InvalidInput(
            f"{ref!r} is not a data set reference; expected NAME, NAME@latest or NAME@VERSION",
            field=field,
        )
    name = validate_name(match.group("name"), field=field)
    return DatasetRef(name, _parse_version(match.group("version"), field))


def _parse_version(value: str | int | None, field: str) -> int | None:
    if value is None or value == "latest":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    raise InvalidInput(
        f"{value!r} is not a version; expected a number from 1 or 'latest'", field=field
    )


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`DatasetCatalog.ingest` did: the version, and whether this call created it."""

    version: DatasetVersion
    created: bool


class _AlreadyStored(Exception):
    """Raised inside a write transaction to roll it back: the content is already a version."""

    def __init__(self, version: DatasetVersion) -> None:
        self.version = version


class DatasetCatalog:
    """Versioned data sets of one workspace (``ws.datasets``). Constructing it does no I/O."""

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore, actor: str) -> None:
        self._meta = metadata
        self._artifacts = artifacts
        self._actor = actor

    # -- writing ----------------------------------------------------------------------------

    def add(self, name: str, source: Any, *, description: str | None = None) -> DatasetVersion:
        """Store ``source`` as the next version of ``name``, or return the version holding it.

        ``source``: a path to a CSV, Parquet or JSON lines file, a folder or glob of Parquet
        parts, a ``pyarrow.Table`` or a ``pandas.DataFrame``. :meth:`ingest` also says whether
        the version was created by this call.
        """
        return self.ingest(name, source, description=description).version

    def ingest(self, name: str, source: Any, *, description: str | None = None) -> AddResult:
        """Like :meth:`add`, returning whether the version is new (``created``)."""
        validate_name(name, field="name")
        if description is not None and len(description) > _MAX_DESCRIPTION:
            raise InvalidInput(
                f"must be at most {_MAX_DESCRIPTION} characters", field="description"
            )
        src = open_source(source)
        with tempfile.TemporaryDirectory(prefix="modelcycle-data-") as tmp:
            staged = stage(src, Path(tmp) / "data.parquet")
            existing = self._find_content(name, staged.sha256)
            if existing is not None:
                return AddResult(existing, created=False)
            profile = compute_profile(staged.schema, _parquet_reader(staged.path))
            ref = self._artifacts.put_file(staged.path)
        schema = [
            ColumnSpec(f.name, str(f.type), profile["columns"][f.name]["nulls"] > 0)
            for f in staged.schema
        ]
        return self._insert(name, staged, schema, profile, ref.sha256, ref.size, description)

    def _insert(
        self,
        name: str,
        staged: Staged,
        schema: list[ColumnSpec],
        profile: dict[str, Any],
        artifact: str,
        size: int,
        description: str | None,
    ) -> AddResult:
        # Writers run one at a time (the store locks first), so "latest + 1" is safe here.
        try:
            version = self._insert_once(
                name, staged, schema_to_json(schema), profile, artifact, size, description
            )
        except _AlreadyStored as found:
            return AddResult(found.version, created=False)
        return AddResult(version, created=True)

    def _insert_once(
        self,
        name: str,
        staged: Staged,
        schema_json: list[dict[str, Any]],
        profile: dict[str, Any],
        artifact: str,
        size: int,
        description: str | None,
    ) -> DatasetVersion:
        t = tables.dataset_versions
        with self._meta.write(
            actor=self._actor,
            action="dataset.version_created",
            subject=f"dataset:{name}",
            payload={"name": name, "sha256": staged.sha256},
        ) as tx:
            row = tx.conn.execute(
                select(t).where(t.c.name == name, t.c.sha256 == staged.sha256).limit(1)
            ).first()
            if row is not None:
                raise _AlreadyStored(_to_version(row))
            latest = tx.conn.execute(select(func.max(t.c.version)).where(t.c.name == name)).scalar()
            version = DatasetVersion(
                name=name,
                version=int(latest or 0) + 1,
                sha256=staged.sha256,
                num_rows=staged.num_rows,
                size_bytes=size,
                schema=schema_json,
                profile=profile,
                source=staged.description,
                created_at=utc_timestamp(),
                created_by=self._actor,
                artifact_sha256=artifact,
                description=description,
            )
            tx.conn.execute(
                insert(t).values(
                    name=name,
                    version=version.version,
                    sha256=version.sha256,
                    num_rows=version.num_rows,
                    size_bytes=version.size_bytes,
                    schema=canonical_json(version.schema),
                    profile=canonical_json(version.profile),
                    source=version.source,
                    created_at=version.created_at,
                    created_by=version.created_by,
                    artifact_sha256=artifact,
                    description=description,
                )
            )
            tx.subject = f"dataset:{version.ref}"
            tx.payload.update(
                version=version.version,
                artifact_sha256=artifact,
                num_rows=version.num_rows,
                size_bytes=size,
                columns=len(schema_json),
                source=version.source,
            )
        return version

    # -- reading ----------------------------------------------------------------------------

    def version(self, name: str, version: int | str | None = "latest") -> DatasetVersion:
        """The record of one version (no data): ``version`` a number, ``"latest"`` or None.

        ``name`` may also be a full reference ``NAME@VERSION``.
        """
        ref = self._ref(name, version)
        t = tables.dataset_versions
        query = select(t).where(t.c.name == ref.name)
        if ref.version is None:
            query = query.order_by(t.c.version.desc()).limit(1)
        else:
            query = query.where(t.c.version == ref.version)
        with self._meta.read() as conn:
            row = conn.execute(query).first()
            if row is None:
                latest = conn.execute(
                    select(func.max(t.c.version)).where(t.c.name == ref.name)
                ).scalar()
        if row is None:
            if latest is None:
                raise NotFound(
                    f"no data set named {ref.name!r}; `modelcycle data list` shows the data sets"
                )
            raise NotFound(
                f"data set {ref.name!r} has no version {ref.version} (latest is {latest})"
            )
        return _to_version(row)

    def get(self, name: str, version: int | str | None = "latest") -> pa.Table:
        """The version's data as an Arrow table, read from the artifact store and verified.

        Raises IntegrityError when the stored Parquet no longer matches its hash.
        """
        record = self.version(name, version)
        data = self._artifacts.get_bytes(record.artifact_sha256)
        return pq.read_table(pa.BufferReader(data))

    def list(self, name: str | None = None) -> builtins.list[DatasetVersion]:
        """Every version (of ``name`` when given), by name then version."""
        t = tables.dataset_versions
        query = select(t).order_by(t.c.name, t.c.version)
        if name is not None:
            query = query.where(t.c.name == validate_name(name, field="name"))
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [_to_version(r) for r in rows]

    def diff(self, ref_a: str, ref_b: str) -> DatasetDiff:
        """Schema changes and per-column profile shift from ``ref_a`` to ``ref_b``."""
        a, b = parse_dataset_ref(ref_a, field="ref_a"), parse_dataset_ref(ref_b, field="ref_b")
        va, vb = self.version(str(a)), self.version(str(b))
        return diff_versions(va, self.get(va.ref), vb, self.get(vb.ref))

    # -- helpers ----------------------------------------------------------------------------

    def _ref(self, name: str, version: int | str | None) -> DatasetRef:
        if isinstance(name, str) and "@" in name:
            ref = parse_dataset_ref(name, field="name")
            explicit = _parse_version(version, "version")
            if explicit is not None and explicit != ref.version:
                raise InvalidInput(
                    f"the reference {name!r} names a version and so does version={version!r}",
                    field="version",
                )
            return ref
        return DatasetRef(validate_name(name, field="name"), _parse_version(version, "version"))

    def _find_content(self, name: str, sha256: str) -> DatasetVersion | None:
        t = tables.dataset_versions
        with self._meta.read() as conn:
            row = conn.execute(
                select(t)
                .where(t.c.name == name, t.c.sha256 == sha256)
                .order_by(t.c.version)
                .limit(1)
            ).first()
        return None if row is None else _to_version(row)


def _parquet_reader(path: Path) -> Any:
    def read(columns: builtins.list[str] | None) -> Any:
        return pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=columns)

    return read


def _to_version(row: Row[Any]) -> DatasetVersion:
    m = row._mapping
    return DatasetVersion(
        name=m["name"],
        version=int(m["version"]),
        sha256=m["sha256"],
        num_rows=int(m["num_rows"]),
        size_bytes=int(m["size_bytes"]),
        schema=json.loads(m["schema"]),
        profile=json.loads(m["profile"]),
        source=m["source"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        artifact_sha256=m["artifact_sha256"],
        description=m["description"],
    )
