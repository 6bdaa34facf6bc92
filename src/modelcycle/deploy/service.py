"""The deploy stage's facade (``ws.deploy``): bundles, deployments and their records.

Every deployment attempt ends as one row of ``deployments`` written with its audit event in
one transaction: ``deployment.succeeded`` (status ``active``; the row it replaces becomes
``replaced``), ``deployment.rolled_back`` (the new version failed beside a running one, which
keeps serving), ``deployment.failed`` (nothing was serving), ``deployment.stopped``.
"""

from __future__ import annotations

import builtins
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.deploy.bundle import BundleInfo, build_bundle, verify_bundle
from modelcycle.deploy.rollout import RolloutResult, SmokeResult, rollout, sample_rows, smoke_test
from modelcycle.deploy.targets import Instance, Target, open_target
from modelcycle.errors import Conflict, InvalidInput, ModelcycleError, NotFound
from modelcycle.names import validate_name
from modelcycle.store import ArtifactStore, MetadataStore, tables

if TYPE_CHECKING:
    from modelcycle.entities import ModelVersion
    from modelcycle.registry import ModelRegistry

__all__ = ["ACTIVE", "DeployService", "Deployment", "DeploymentFailed"]

ACTIVE = "active"
REPLACED = "replaced"
STOPPED = "stopped"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
_COLORS = ("blue", "green")


class DeploymentFailed(ModelcycleError):
    """A deployment attempt failed (and was recorded); what served before still serves."""

    def __init__(self, message: str, *, deployment: Deployment) -> None:
        super().__init__(message)
        self.deployment = deployment


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment attempt of one model version to one endpoint."""

    id: str
    endpoint: str
    target: str
    model_name: str
    model_version: int
    bundle_sha256: str
    status: str
    color: str | None
    url: str | None
    details: dict[str, Any]
    created_at: str
    created_by: str
    updated_at: str

    @property
    def model(self) -> str:
        return f"{self.model_name}/{self.model_version}"

    @property
    def reason(self) -> str | None:
        value = self.details.get("reason")
        return str(value) if value is not None else None

    @property
    def instance(self) -> Instance | None:
        data = self.details.get("instance")
        return Instance.from_dict(data) if data else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "target": self.target,
            "model": self.model,
            "bundle_sha256": self.bundle_sha256,
            "status": self.status,
            "color": self.color,
            "url": self.url,
            "details": self.details,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
        }


def _row_to_deployment(row: Any) -> Deployment:
    m = row._mapping
    return Deployment(
        id=m["id"],
        endpoint=m["endpoint"],
        target=m["target"],
        model_name=m["model_name"],
        model_version=int(m["model_version"]),
        bundle_sha256=m["bundle_sha256"],
        status=m["status"],
        color=m["color"],
        url=m["url"],
        details=json.loads(m["details"]),
        created_at=m["created_at"],
        created_by=m["created_by"],
        updated_at=m["updated_at"],
    )


class DeployService:
    """Bundles and deployments of one workspace. Constructing it touches nothing.

    ``ws.deploy("credit@champion", endpoint="credit")`` deploys (the one call automations
    make); ``ws.deploy.bundle(...)`` only writes a bundle.
    """

    def __init__(
        self,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        registry: ModelRegistry,
        actor: str,
        *,
        root: Path,
        state_dir: Path,
    ) -> None:
        self._meta = metadata
        self._artifacts = artifacts
        self._registry = registry
        self._actor = actor
        self._root = Path(root)
        self.deployments_dir = Path(state_dir) / "deployments"

    def __repr__(self) -> str:
        return f"DeployService({str(self._root)!r})"

    # -- bundles ----------------------------------------------------------------------------

    def bundle(
        self,
        ref: str,
        out: Path | str,
        *,
        overwrite: bool = False,
        lock_file: Path | str | None = None,
    ) -> BundleInfo:
        """Write the bundle of ``ref`` (``NAME@ALIAS`` or ``NAME/V``) to the folder ``out``.

        Wheel hashes come from ``lock_file``, by default the workspace's ``requirements.lock``
        when it exists.
        """
        mv = self._registry.get(ref)
        if mv.status != ACTIVE:
            raise Conflict(f"{mv.ref} is {mv.status} and cannot be bundled")
        lock = Path(lock_file) if lock_file is not None else self._root / "requirements.lock"
        if lock_file is not None and not lock.is_file():
            raise NotFound(f"no lock file {lock}")
        example = (
            self._artifacts.get_bytes(mv.example_sha256) if mv.example_sha256 is not None else None
        )
        return build_bundle(
            out,
            version=mv,
            model_bytes=self._artifacts.get_bytes(mv.sha256),
            example_bytes=example,
            code_version=self._code_version(mv),
            lock_file=lock if lock.is_file() else None,
            overwrite=overwrite,
        )

    @staticmethod
    def verify(path: Path | str) -> BundleInfo:
        """Recheck every file of the bundle at ``path`` (IntegrityError names the first bad one)."""
        return verify_bundle(path)

    def _code_version(self, mv: ModelVersion) -> str | None:
        tagged = mv.tags.get("code_version") or mv.tags.get("git_commit")
        if tagged or mv.run_id is None:
            return tagged
        r = tables.runs
        with self._meta.read() as conn:
            code = conn.execute(select(r.c.code).where(r.c.id == mv.run_id)).scalar()
        if code is None:
            return None
        info = json.loads(code)
        commit = info.get("commit")
        if not commit:
            return None
        return f"{commit}+dirty" if info.get("dirty") else str(commit)

    # -- deploying --------------------------------------------------------------------------

    def __call__(self, ref: str, *, endpoint: str, **options: Any) -> Deployment:
        return self.deploy(ref, endpoint=endpoint, **options)

    def deploy(
        self,
        ref: str,
        *,
        endpoint: str,
        target: str = "local",
        port: int | None = None,
        trust: bool = False,
        ready_timeout: float = 60.0,
    ) -> Deployment:
        """Deploy ``ref`` to ``endpoint``: blue/green beside what serves there now.

        Raises :class:`DeploymentFailed` (after recording it) when the new version does not
        start, become ready or pass the smoke test; the old version keeps serving.
        """
        endpoint = validate_name(endpoint, field="endpoint")
        if port is not None and not 0 < port < 65536:
            raise InvalidInput(f"must be within 1..65535, got {port}", field="port")
        if ready_timeout <= 0:
            raise InvalidInput("must be > 0", field="ready_timeout")
        tgt = open_target(target, self.deployments_dir, log_db=self._meta.url)
        mv = self._registry.get(ref)
        if mv.status != ACTIVE:
            raise Conflict(f"{mv.ref} is {mv.status} and cannot be deployed")
        blue = self.active(endpoint)
        if blue is not None and blue.target != tgt.name:
            raise Conflict(f"endpoint {endpoint!r} runs on the {blue.target} target; stop it first")
        blue_instance = blue.instance if blue is not None else None
        blue_running = blue_instance is not None and tgt.is_running(blue_instance)
        if blue_instance is not None and port == blue_instance.port and blue_running:
            port = None  # green goes beside blue; the endpoint's URL then names the new port
        deployment_id = uuid.uuid4().hex
        workdir = self.deployments_dir / endpoint / deployment_id
        info = self.bundle(mv.ref, workdir / "bundle")
        color = _COLORS[1] if blue is not None and blue.color == _COLORS[0] else _COLORS[0]
        base: dict[str, Any] = {
            "id": deployment_id,
            "endpoint": endpoint,
            "target": tgt.name,
            "model_name": mv.name,
            "model_version": mv.version,
            "bundle_sha256": info.digest,
            "color": color,
        }
        details: dict[str, Any] = {
            "ref": ref,
            "bundle": str(info.path),
            "previous": blue.id if blue is not None else None,
            "previous_model": blue.model if blue is not None else None,
            "trust": trust,
        }

        def commit(green: Instance) -> None:
            self._commit_success(base, details, green, expected_blue=blue, target=tgt)

        result = rollout(
            tgt,
            info,
            endpoint=endpoint,
            workdir=workdir,
            port=port,
            trust=trust,
            blue=blue_instance if blue_running else None,
            smoke=lambda green: self._smoke(mv, green, trust),
            commit=commit,
            ready_timeout=ready_timeout,
        )
        if result.ok:
            return self.get(deployment_id)
        return self._record_failure(base, details, result, blue_running=blue_running)

    def _smoke(self, mv: ModelVersion, green: Instance, trust: bool) -> SmokeResult:
        """The version's example rows through green's v2 route, compared with the registry's
        own predictions on the same rows."""
        import pyarrow as pa

        columns = sample_rows(mv.signature, self._registry.input_example(mv.ref))
        expected: list[Any] | None = None
        registry_error: str | None = None
        try:
            loaded = self._registry.load(mv.ref, trust=trust)
            expected = [
                v.item() if hasattr(v, "item") else v for v in loaded.predict(pa.table(columns))
            ]
        except Exception as exc:  # whatever the model raises is the reason to report
            registry_error = f"the registry cannot predict on the smoke-test rows ({exc})"
        result = smoke_test(
            green.url,
            name=mv.name,
            version=mv.version,
            signature=mv.signature,
            columns=columns,
            expected=expected,
        )
        if result.ok and registry_error is not None:
            return SmokeResult(False, registry_error, result.status, result.rows, result.seconds)
        return result

    def _commit_success(
        self,
        base: dict[str, Any],
        details: dict[str, Any],
        green: Instance,
        *,
        expected_blue: Deployment | None,
        target: Target,
    ) -> None:
        now = utc_timestamp()
        d = tables.deployments
        full = {**details, "instance": green.as_dict()}
        with self._meta.write(
            actor=self._actor,
            action="deployment.succeeded",
            subject=f"deployment:{base['endpoint']}",
            payload={
                "id": base["id"],
                "model": f"{base['model_name']}/{base['model_version']}",
                "target": base["target"],
                "url": green.url,
                "pid": green.pid,
                "color": base["color"],
                "bundle_sha256": base["bundle_sha256"],
                "replaced": expected_blue.id if expected_blue is not None else None,
            },
        ) as tx:
            current = tx.conn.execute(
                select(d.c.id).where(d.c.endpoint == base["endpoint"], d.c.status == ACTIVE)
            ).scalar()
            expected = expected_blue.id if expected_blue is not None else None
            if current != expected:
                raise Conflict(
                    f"endpoint {base['endpoint']!r} changed while this deployment started "
                    f"(now {current}); run it again"
                )
            if current is not None:
                tx.conn.execute(
                    update(d).where(d.c.id == current).values(status=REPLACED, updated_at=now)
                )
            tx.conn.execute(
                insert(d).values(
                    **base,
                    status=ACTIVE,
                    url=green.url,
                    details=canonical_json(full),
                    created_at=now,
                    created_by=self._actor,
                    updated_at=now,
                )
            )
            # The pointer moves inside the transaction: if it cannot be written, no row says
            # the switch happened.
            target.activate(
                base["endpoint"],
                green,
                {
                    "deployment": base["id"],
                    "model": f"{base['model_name']}/{base['model_version']}",
                    "pid": green.pid,
                    "color": base["color"],
                },
            )

    def _record_failure(
        self,
        base: dict[str, Any],
        details: dict[str, Any],
        result: RolloutResult,
        *,
        blue_running: bool,
    ) -> Deployment:
        now = utc_timestamp()
        status, action = (
            (ROLLED_BACK, "deployment.rolled_back")
            if blue_running
            else (
                FAILED,
                "deployment.failed",
            )
        )
        full = {
            **details,
            "reason": result.reason,
            "instance": result.instance.as_dict() if result.instance is not None else None,
            "smoke": result.smoke.as_dict() if result.smoke is not None else None,
            "log_tail": result.log_tail,
        }
        with self._meta.write(
            actor=self._actor,
            action=action,
            subject=f"deployment:{base['endpoint']}",
            payload={
                "id": base["id"],
                "model": f"{base['model_name']}/{base['model_version']}",
                "target": base["target"],
                "reason": result.reason,
                "kept": details["previous"] if blue_running else None,
                "bundle_sha256": base["bundle_sha256"],
            },
        ) as tx:
            tx.conn.execute(
                insert(tables.deployments).values(
                    **base,
                    status=status,
                    url=None,
                    details=canonical_json(full),
                    created_at=now,
                    created_by=self._actor,
                    updated_at=now,
                )
            )
        record = self.get(base["id"])
        kept = (
            f"; {details['previous_model']} keeps serving endpoint {base['endpoint']!r}"
            if blue_running
            else ""
        )
        verb = "rolled back" if blue_running else "failed"
        raise DeploymentFailed(
            f"deployment of {record.model} to {base['endpoint']!r} {verb}: {result.reason}{kept}",
            deployment=record,
        )

    # -- records ----------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment:
        d = tables.deployments
        with self._meta.read() as conn:
            row = conn.execute(select(d).where(d.c.id == deployment_id)).first()
        if row is None:
            raise NotFound(f"no deployment {deployment_id!r}")
        return _row_to_deployment(row)

    def active(self, endpoint: str) -> Deployment | None:
        """The deployment serving ``endpoint`` now, if any."""
        d = tables.deployments
        with self._meta.read() as conn:
            row = conn.execute(
                select(d).where(d.c.endpoint == endpoint, d.c.status == ACTIVE)
            ).first()
        return _row_to_deployment(row) if row is not None else None

    def list(self, endpoint: str | None = None, *, all: bool = False) -> builtins.list[Deployment]:
        """Active deployments (every attempt with ``all``), oldest first."""
        d = tables.deployments
        query = select(d).order_by(d.c.created_at, d.c.id)
        if endpoint is not None:
            query = query.where(d.c.endpoint == validate_name(endpoint, field="endpoint"))
        if not all:
            query = query.where(d.c.status == ACTIVE)
        with self._meta.read() as conn:
            rows = conn.execute(query).all()
        return [_row_to_deployment(r) for r in rows]

    def show(self, endpoint: str) -> Deployment:
        """The active deployment of ``endpoint``, else its latest attempt."""
        history = self.list(endpoint, all=True)
        if not history:
            raise NotFound(f"no deployment to endpoint {endpoint!r}")
        active = [h for h in history if h.status == ACTIVE]
        return active[-1] if active else history[-1]

    def is_running(self, deployment: Deployment) -> bool:
        instance = deployment.instance
        if instance is None:
            return False
        return open_target(deployment.target, self.deployments_dir).is_running(instance)

    def stop(self, endpoint: str) -> Deployment:
        """Stop the endpoint's active server; the row becomes ``stopped``."""
        endpoint = validate_name(endpoint, field="endpoint")
        current = self.active(endpoint)
        if current is None:
            raise NotFound(f"endpoint {endpoint!r} has no active deployment")
        tgt = open_target(current.target, self.deployments_dir)
        instance = current.instance
        was_running = tgt.stop(instance) if instance is not None else False
        now = utc_timestamp()
        d = tables.deployments
        with self._meta.write(
            actor=self._actor,
            action="deployment.stopped",
            subject=f"deployment:{endpoint}",
            payload={"id": current.id, "model": current.model, "was_running": was_running},
        ) as tx:
            tx.conn.execute(
                update(d)
                .where(d.c.id == current.id, d.c.status == ACTIVE)
                .values(status=STOPPED, updated_at=now)
            )
            tgt.deactivate(endpoint)
        return self.get(current.id)

    def logs(self, endpoint: str, *, tail: int | None = None) -> str:
        """The server log of the endpoint's active deployment (else its latest attempt)."""
        record = self.show(endpoint)
        instance = record.instance
        if instance is None:
            return ""
        return open_target(record.target, self.deployments_dir).logs(instance, tail=tail)
