"""The workspace: one folder (``.modelcycle/`` + ``modelcycle.toml``) and the stores it names.

``Workspace(path)`` reads the settings and connects to nothing; the database is opened and its
schema checked on first use. ``init_workspace`` is the only place that creates a schema.
"""

from __future__ import annotations

import shutil
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from modelcycle._version import __version__
from modelcycle.audit import CompromiseFile, HeadFile, utc_timestamp
from modelcycle.entities import ArtifactRef, AuditEvent
from modelcycle.errors import Conflict, InvalidInput
from modelcycle.settings import CONFIG_FILE, STATE_DIR, Settings, load_settings
from modelcycle.store import (
    ArtifactStore,
    AuditTrail,
    MetadataStore,
    SchemaStatus,
    open_artifact_store,
    redact_db_url,
    tables,
)
from modelcycle.store.head_row import HeadRow
from modelcycle.store.schema import schema_status

if TYPE_CHECKING:
    from modelcycle.automations import Automations
    from modelcycle.datasets import DatasetCatalog
    from modelcycle.deploy import DeployService
    from modelcycle.monitoring import Monitoring
    from modelcycle.pipelines import Pipelines
    from modelcycle.registry import ModelRegistry, PromotionApprovals
    from modelcycle.scoring.batch import BatchScoring
    from modelcycle.store.keys import Keys

__all__ = ["Workspace", "init_workspace"]

_CONFIG_TEMPLATE = """\
# modelcycle workspace configuration. Environment variables MODELCYCLE_* override it.

[store]
# Metadata database. Default: SQLite in .modelcycle/modelcycle.db.
# db_url = "postgresql+psycopg://modelcycle@db.example:5432/modelcycle"
# Artifact store: a local folder (relative to this file) or a URL.
# artifacts = ".modelcycle/artifacts"
"""


class Workspace:
    """The entry point of the Python SDK: ``ws = Workspace()`` finds the workspace upward."""

    def __init__(self, path: Path | str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings(path)
        self._meta: MetadataStore | None = None
        self._artifacts: ArtifactStore | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def root(self) -> Path:
        return self.settings.root

    @property
    def actor(self) -> str:
        return self.settings.actor

    def as_actor(self, actor: str) -> Workspace:
        """This workspace acting for ``actor`` (an API token's name), sharing its open stores.

        The HTTP API audits each request under its token's name: one such view per token,
        without changing this workspace or any process-wide setting. Close only the original.
        """
        other = Workspace(settings=self.settings.model_copy(update={"actor": actor}))
        other._meta = self.metadata
        other._artifacts = self.artifacts
        return other

    @property
    def metadata(self) -> MetadataStore:
        """The metadata database, opened and schema-checked on first use."""
        if self._meta is None:
            meta = self._new_metadata_store()
            meta.check_schema()
            self._meta = meta
        return self._meta

    @property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed artifact store."""
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings.artifacts_url)
        return self._artifacts

    @property
    def audit(self) -> AuditTrail:
        """The audit trail: list, verify, export, note."""
        return AuditTrail(
            self.metadata, self._head_copy(), self.actor, compromise=self._compromise_file()
        )

    @property
    def keys(self) -> Keys:
        """Signing keys (``.modelcycle/keys`` or named in modelcycle.toml), use audited."""
        from modelcycle.audit.keys import KeyRing
        from modelcycle.store.keys import Keys

        ring = KeyRing(self.settings.state_dir / "keys", self.settings.config, root=self.root)
        return Keys(self.metadata, ring, self.actor, root=self.root)

    # -- stage facades: each stage adds one lazily built property below ----------------------

    @cached_property
    def automations(self) -> Automations:
        """Rules from modelcycle.toml, the job queue, and workers."""
        from modelcycle.automations import Automations

        return Automations(
            self.metadata,
            self.actor,
            self,
            self.settings.config,
            root=self.root,
            config_file=self.settings.config_file,
        )

    @cached_property
    def registry(self) -> ModelRegistry:
        """The model registry: register, get, load, aliases, promotion, lineage."""
        # Imported here so that commands which never touch models skip loading numpy/pyarrow.
        from modelcycle.registry import (
            ModelRegistry,
            PromotionApprovals,
            load_promotion_policies,
        )

        registry = ModelRegistry(self.metadata, self.artifacts, self.actor, self.datasets)
        # [promotion.*] policies: an alias move that needs approvals becomes a request.
        policies = load_promotion_policies(self.settings.config)
        registry.approvals = PromotionApprovals(self.metadata, registry, self.actor, policies)
        return registry

    @property
    def approvals(self) -> PromotionApprovals:
        """Promotion requests under [promotion.*] policies: list, get, approve, reject, cancel."""
        approvals = self.registry.approvals
        assert approvals is not None  # set by the registry property above
        return approvals

    @cached_property
    def datasets(self) -> DatasetCatalog:
        """Data set versions: add, get, list, show, diff."""
        # Imported here so that commands which never touch data skip loading pyarrow.
        from modelcycle.datasets import DatasetCatalog

        return DatasetCatalog(self.metadata, self.artifacts, self.actor)

    @cached_property
    def pipelines(self) -> Pipelines:
        """Pipelines and runs: run, resume, runs, get_run, compare, train."""
        # Imported here so that commands which never run pipelines skip loading scikit-learn.
        from modelcycle.pipelines import Pipelines

        return Pipelines(
            self.metadata,
            self.artifacts,
            self.actor,
            self.root,
            datasets=self.datasets,
            registry=self.registry,
            config=self.settings.config,
        )

    @cached_property
    def monitoring(self) -> Monitoring:
        """Monitoring: drift checks (stored, audited), history, performance from ground truth."""
        # Imported here so that commands which never monitor skip loading numpy/scipy/pyarrow.
        from modelcycle.monitoring import Monitoring

        return Monitoring(
            self.metadata,
            self.actor,
            registry=self.registry,
            datasets=self.datasets,
            config=self.settings.config,
        )

    @cached_property
    def batch(self) -> BatchScoring:
        """Batch scoring jobs: score, resume, get, list."""
        # Imported here so that commands which never batch-score skip loading pyarrow.
        from modelcycle.scoring.batch import BatchScoring
        from modelcycle.scoring.log_sinks import scoring_section

        return BatchScoring(
            self.metadata,
            self.artifacts,
            self.actor,
            registry=self.registry,
            datasets=self.datasets,
            artifacts_url=self.settings.artifacts_url,
            compiled_cache=self.compiled_cache,
            compile_min_rows=scoring_section(self.settings.config).compiled_trees_min_rows,
        )

    @property
    def compiled_cache(self) -> Path | None:
        """Where batch jobs and scoring servers keep tree ensembles compiled for this machine
        (``[scoring] compiled_trees``; registry/compiled_trees.py), or None when turned off."""
        from modelcycle.scoring.log_sinks import scoring_section

        if not scoring_section(self.settings.config).compiled_trees:
            return None
        return self.settings.local_dir("compiled")

    @cached_property
    def deploy(self) -> DeployService:
        """Deployments: bundle, deploy (blue/green, rollback), list, show, stop, logs.

        ``ws.deploy("credit@champion", endpoint="credit")`` deploys in one call.
        """
        # Imported here so that commands which never deploy skip the deploy stage.
        from modelcycle.deploy import DeployService
        from modelcycle.deploy.host_state import deploy_state_dir
        from modelcycle.deploy.signing import SignedBundleGate, deploy_settings

        service = DeployService(
            self.metadata,
            self.artifacts,
            self.registry,
            self.actor,
            root=self.root,
            state_dir=deploy_state_dir(self.settings),  # a stateless process: its cache
        )
        required, trusted = deploy_settings(self.settings.config)
        if required:  # [deploy] require_signed = true (docs/evidence.md)
            service.bundle_gate = SignedBundleGate(
                self.keys, self.metadata, self.actor, self.settings.state_dir, trusted
            )
        return service

    # -- end of stage facades -------------------------------------------------------------------

    def schema_status(self) -> SchemaStatus:
        """Where the database stands against this modelcycle's schema (no check, no change)."""
        meta = self._new_metadata_store()
        try:
            with meta.read() as conn:
                return schema_status(conn)
        finally:
            meta.close()

    def upgrade(self) -> SchemaStatus:
        """Migrate the database to this modelcycle's schema and record it in the audit log."""
        meta = self._new_metadata_store()
        with meta.read() as conn:
            before = schema_status(conn)
        if before.current is None:
            raise Conflict(
                f"the database {redact_db_url(meta.url)} has no modelcycle schema to upgrade; "
                "run `modelcycle init` instead"
            )
        meta.upgrade()
        if not before.up_to_date:
            with meta.write(
                actor=self.actor,
                action="db.upgraded",
                subject="workspace",
                payload={"from": before.current, "to": before.head, "modelcycle": __version__},
            ):
                pass
        self._meta = meta
        return self.schema_status()

    def store_artifact(self, path: Path | str, *, label: str | None = None) -> ArtifactRef:
        """Put a file into the artifact store and record it (and who stored it) in the index."""
        ref = self.artifacts.put_file(path)
        name = label if label is not None else Path(path).name
        if len(name) > 500:
            raise InvalidInput("must be at most 500 characters", field="label")
        with self.metadata.write(
            actor=self.actor,
            action="artifact.stored",
            subject=f"artifact:{ref.sha256}",
            payload={"size": ref.size, "label": name},
        ) as tx:
            known = tx.conn.execute(
                select(tables.artifacts.c.sha256).where(tables.artifacts.c.sha256 == ref.sha256)
            ).first()
            tx.payload["new"] = known is None
            if known is None:
                tx.conn.execute(
                    insert(tables.artifacts).values(
                        sha256=ref.sha256,
                        size=ref.size,
                        label=name,
                        created_at=utc_timestamp(),
                        created_by=self.actor,
                    )
                )
        return ref

    def artifact_index(self) -> list[dict[str, Any]]:
        """The blobs stored through :meth:`store_artifact`, oldest first."""
        t = tables.artifacts
        with self.metadata.read() as conn:
            rows = conn.execute(select(t).order_by(t.c.created_at, t.c.sha256)).all()
        return [dict(row._mapping) for row in rows]

    def close(self) -> None:
        """Release database connections."""
        if self._meta is not None:
            self._meta.close()
            self._meta = None

    def _new_metadata_store(self) -> MetadataStore:
        if self.settings.stateless:
            # No folder: the head copy is a database row (decision 0009), read through the
            # engine of the store it hooks into.
            holder: list[MetadataStore] = []
            row = HeadRow(lambda: holder[0].engine)
            meta = MetadataStore(self.settings.db_url, on_commit=row.advance, ci=self.settings.ci)
            holder.append(meta)
            return meta
        head_file = HeadFile(self.settings.audit_head_path)
        return MetadataStore(
            self.settings.db_url,
            on_commit=head_file.advance,
            compromise=self._compromise_file(),
            ci=self.settings.ci,
        )

    def _head_copy(self) -> HeadFile | HeadRow:
        """The chain head kept apart from the events: a file, or a row when there is no folder."""
        if self.settings.stateless:
            meta = self.metadata
            return HeadRow(lambda: meta.engine)
        return HeadFile(self.settings.audit_head_path)

    def _compromise_file(self) -> CompromiseFile | None:
        # Beside the head file: the "chain broken" mark, kept outside the database too. Without
        # a folder only the database row holds it (decision 0005's first copy).
        if self.settings.stateless:
            return None
        return CompromiseFile(self.settings.audit_head_path.with_name("audit.compromised"))


def init_workspace(
    path: Path | str = ".", *, db_url: str | None = None
) -> tuple[Workspace, AuditEvent]:
    """Create a workspace at ``path``: state folder, config file, database schema.

    Returns the workspace and its ``workspace.created`` (or, when the database already holds
    a modelcycle schema, ``workspace.attached``) audit event.
    """
    root = Path(path).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise InvalidInput("exists and is not a folder", field=str(path))
    if (root / STATE_DIR).is_dir():
        raise Conflict(f"{root} is already a modelcycle workspace")
    (root / STATE_DIR).mkdir(parents=True)
    config_path = root / CONFIG_FILE
    created_config = not config_path.exists()
    if created_config:
        config = _CONFIG_TEMPLATE
        if db_url is not None:
            config = config.replace("[store]\n", f"[store]\ndb_url = {_toml_string(db_url)}\n", 1)
        config_path.write_text(config, encoding="utf-8")
    try:
        ws = Workspace(root)
        meta = ws._new_metadata_store()
        with meta.read() as conn:
            existing = schema_status(conn).current
        meta.upgrade()
        action = "workspace.attached" if existing is not None else "workspace.created"
        with meta.write(
            actor=ws.actor,
            action=action,
            subject="workspace",
            payload={
                "root": str(root),
                "db": redact_db_url(meta.url),
                "artifacts": ws.settings.artifacts_url,
                "modelcycle": __version__,
            },
        ) as tx:
            pass
        ws._meta = meta
    except BaseException:
        # Leave nothing half-made: a failed init can be retried as it was.
        shutil.rmtree(root / STATE_DIR, ignore_errors=True)
        if created_config:
            config_path.unlink(missing_ok=True)
        raise
    return ws, tx.events[0]


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
