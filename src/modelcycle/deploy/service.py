"""The deploy stage's facade (``ws.deploy``): bundles, deployments and their records.

Every deployment attempt ends as one row of ``deployments`` written with its audit event in
one transaction: ``deployment.succeeded`` (status ``active``; the row it replaces becomes
``replaced``), ``deployment.rolled_back`` (the new version failed beside a running one, which
keeps serving), ``deployment.failed`` (nothing was serving), ``deployment.stopped``,
``deployment.rolled_back_on_demand`` (``rollback``: the previous version deployed again).
A watch after the switch adds ``deployment.watch_passed``, or turns the attempt's row into
``rolled_back`` (``deployment.rolled_back``) and its blue row back into ``active``.

Clients reach an endpoint through its router (:mod:`modelcycle.deploy.router`) on a stable
port; a row's ``url`` is that stable URL, its instance's URL the version's own server.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from modelcycle.audit import canonical_json, utc_timestamp
from modelcycle.deploy._alias_follow import alias_note, carry_alias_back
from modelcycle.deploy._templates import image_name
from modelcycle.deploy.bundle import BundleInfo, build_bundle, verify_bundle
from modelcycle.deploy.kubernetes import KubernetesError, apply_manifests
from modelcycle.deploy.rollout import (
    RolloutResult,
    SmokeResult,
    WatchLimits,
    WatchResult,
    rollout,
    sample_rows,
    smoke_test,
    watch,
)
from modelcycle.deploy.router import EndpointRouter
from modelcycle.deploy.targets import Instance, Target, open_target
from modelcycle.errors import Conflict, InvalidInput, ModelcycleError, NotFound, NotReady
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
WRITTEN = "written"  # kubernetes manifests written, not applied (no kubectl here)
KUBERNETES = "kubernetes"
ROLLBACK_REQUESTED = "rollback requested"
_COLORS = ("blue", "green")


def _watch_limits(
    seconds: float | None, max_error_rate: float, max_p99_ms: float
) -> WatchLimits | None:
    if not 0.0 <= max_error_rate <= 1.0:
        raise InvalidInput(f"must be within 0..1, got {max_error_rate}", field="max_error_rate")
    if max_p99_ms <= 0:
        raise InvalidInput(f"must be > 0, got {max_p99_ms}", field="max_p99_ms")
    if seconds is None:
        return None
    if seconds <= 0:
        raise InvalidInput(f"must be > 0 seconds, got {seconds}", field="watch")
    return WatchLimits(seconds, max_error_rate=max_error_rate, max_p99_ms=max_p99_ms)


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

    @property
    def backend_url(self) -> str | None:
        """The version's own server (``url`` is the endpoint's stable one, its router)."""
        instance = self.instance
        return instance.url if instance is not None else None

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
            "backend_url": self.backend_url,
            "details": self.details,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
        }


def _activate(
    target: Target,
    endpoint: str,
    instance: Instance,
    *,
    deployment: str,
    model: str,
    color: str | None,
    front: str,
    port: int | None,
) -> None:
    """Point the endpoint's pointer file at ``instance`` (the router is moved separately)."""
    target.activate(
        endpoint,
        instance,
        {
            "deployment": deployment,
            "model": model,
            "pid": instance.pid,
            "color": color,
            "url": front,
            "port": port,
        },
    )


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
        base_image: str | None = None,
        export: Path | str | None = None,
        watch: float | None = None,
        max_error_rate: float = 0.05,
        max_p99_ms: float = 500.0,
        kserve: bool = False,
        namespace: str | None = None,
        _rollback_of: Deployment | None = None,
    ) -> Deployment:
        """Deploy ``ref`` to ``endpoint``: blue/green beside what serves there now, behind the
        endpoint's router on its stable ``port`` (fixed by the first deployment).

        Raises :class:`DeploymentFailed` (after recording it) when the new version does not
        start, become ready or pass the smoke test, or (``watch`` seconds after the switch)
        exceeds ``max_error_rate`` or ``max_p99_ms``; the old version keeps serving.
        """
        endpoint = validate_name(endpoint, field="endpoint")
        if port is not None and not 0 < port < 65536:
            raise InvalidInput(f"must be within 1..65535, got {port}", field="port")
        if ready_timeout <= 0:
            raise InvalidInput("must be > 0", field="ready_timeout")
        if target == KUBERNETES:
            return self._apply_kubernetes(ref, endpoint, kserve=kserve, namespace=namespace)
        limits = _watch_limits(watch, max_error_rate, max_p99_ms)
        tgt = open_target(
            target,
            self.deployments_dir,
            log_db=self._meta.url,
            base_image=base_image,
            export=Path(export) if export is not None else None,
        )
        tgt.check()
        mv = self._registry.get(ref)
        if mv.status != ACTIVE:
            raise Conflict(f"{mv.ref} is {mv.status} and cannot be deployed")
        blue = self.active(endpoint)
        if blue is not None and blue.target != tgt.name:
            raise Conflict(f"endpoint {endpoint!r} runs on the {blue.target} target; stop it first")
        blue_instance = blue.instance if blue is not None else None
        blue_running = blue_instance is not None and tgt.is_running(blue_instance)
        # The front door first, so a taken port fails before anything is built; a router found
        # dead comes back pointing at blue.
        router = self.router(endpoint)
        front = router.ensure(
            port=port, backend=blue_instance.url if blue_instance and blue_running else None
        )
        if blue_instance is not None and blue_running:
            self._point(router, blue_instance.url)
        try:
            return self._rollout(
                ref, mv, tgt, router, front, blue, blue_running, trust, ready_timeout, limits,
                _rollback_of,
            )  # fmt: skip
        finally:
            if not blue_running and self.active(endpoint) is None:
                router.stop()  # nothing serves: no front door left open on a dead end

    def _rollout(
        self,
        ref: str,
        mv: ModelVersion,
        tgt: Target,
        router: EndpointRouter,
        front: str,
        blue: Deployment | None,
        blue_running: bool,
        trust: bool,
        ready_timeout: float,
        limits: WatchLimits | None,
        rollback_of: Deployment | None,
    ) -> Deployment:
        endpoint = router.endpoint
        blue_instance = blue.instance if blue is not None else None
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
            "endpoint_url": front,
        }
        if rollback_of is not None:
            details.update(reason=ROLLBACK_REQUESTED, rollback_of=rollback_of.id)

        def commit(green: Instance) -> None:
            self._commit_success(
                base, details, green, expected_blue=blue, target=tgt, router=router
            )

        def watch_green(green: Instance) -> WatchResult:
            assert limits is not None
            return watch(
                lambda: router.stats(green.url), limits, is_running=lambda: tgt.is_running(green)
            )

        def revert(green: Instance, verdict: WatchResult) -> None:
            assert blue is not None
            assert blue_instance is not None
            self._point(router, blue_instance.url)  # traffic first, records second
            self._record_watch_failure(base, details, verdict, blue, blue_instance, tgt)

        result = rollout(
            tgt,
            info,
            endpoint=endpoint,
            workdir=workdir,
            port=None,  # backends take free ports; the endpoint's port is the router's
            trust=trust,
            blue=blue_instance if blue_running else None,
            smoke=lambda green: self._smoke(mv, green, trust),
            commit=commit,
            ready_timeout=ready_timeout,
            watch=watch_green if limits is not None else None,
            revert=revert,
        )
        if result.ok:
            if result.watch is not None:
                self._record_watch_passed(base, result.watch)
            return self.get(deployment_id)
        if result.watch is not None:
            record = self.get(deployment_id)
            kept = f"; {details['previous_model']} serves endpoint {endpoint!r} again"
            raise DeploymentFailed(
                f"deployment of {mv.ref} to {endpoint!r} rolled back: {result.reason}{kept}"
                + alias_note(record.details),
                deployment=record,
            )
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
        router: EndpointRouter,
    ) -> None:
        now = utc_timestamp()
        full = {**details, "instance": green.as_dict()}
        front = str(details["endpoint_url"])
        on_demand = details.get("rollback_of") is not None
        switched = False
        try:
            self._switch_in_tx(
                base, full, green, expected_blue, target, router, now, on_demand, front
            )
            switched = True
        finally:
            if not switched and expected_blue is not None and expected_blue.instance is not None:
                # The rows did not move (or the pointer could not): neither does the traffic.
                with contextlib.suppress(ModelcycleError):
                    self._point(router, expected_blue.instance.url)

    def _switch_in_tx(
        self,
        base: dict[str, Any],
        full: dict[str, Any],
        green: Instance,
        expected_blue: Deployment | None,
        target: Target,
        router: EndpointRouter,
        now: str,
        on_demand: bool,
        front: str,
    ) -> None:
        d = tables.deployments
        with self._meta.write(
            actor=self._actor,
            action="deployment.rolled_back_on_demand" if on_demand else "deployment.succeeded",
            subject=f"deployment:{base['endpoint']}",
            payload={
                "id": base["id"],
                "model": f"{base['model_name']}/{base['model_version']}",
                "target": base["target"],
                "url": front,
                "backend_url": green.url,
                "pid": green.pid,
                "color": base["color"],
                "bundle_sha256": base["bundle_sha256"],
                "replaced": expected_blue.id if expected_blue is not None else None,
                **({"reason": full["reason"]} if on_demand else {}),
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
            if on_demand and expected_blue is not None:
                full = carry_alias_back(
                    self._registry, tx, full, left=expected_blue, to=base["model_version"],
                    deployment=base["id"],
                )  # fmt: skip
            self._insert(tx.conn, base, status=ACTIVE, url=front, details=full, now=now)
            # The pointer and the router move inside the transaction: if either cannot, no row
            # says the switch happened (and the caller points the router back at blue).
            _activate(
                target,
                base["endpoint"],
                green,
                deployment=base["id"],
                model=f"{base['model_name']}/{base['model_version']}",
                color=base["color"],
                front=front,
                port=router.port,
            )
            self._point(router, green.url)

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
            self._insert(tx.conn, base, status=status, url=None, details=full, now=now)
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

    def _point(self, router: EndpointRouter, url: str) -> None:
        """Send the endpoint's traffic to ``url``; a router found dead (or deaf) is started
        again, on the same port, forwarding there."""
        try:
            router.switch(url)
        except NotReady:
            router.stop()
            router.ensure(port=router.port, backend=url)

    def _record_watch_failure(
        self,
        base: dict[str, Any],
        details: dict[str, Any],
        verdict: WatchResult,
        blue: Deployment,
        blue_instance: Instance,
        target: Target,
    ) -> None:
        """Green went over a limit during the watch: its row becomes ``rolled_back``, blue's
        ``active`` again, and the pointer names blue."""
        now = utc_timestamp()
        d = tables.deployments
        green = self.get(base["id"])
        full = {**green.details, "reason": verdict.reason, "watch": verdict.as_dict()}
        with self._meta.write(
            actor=self._actor,
            action="deployment.rolled_back",
            subject=f"deployment:{base['endpoint']}",
            payload={
                "id": base["id"],
                "model": green.model,
                "target": base["target"],
                "reason": verdict.reason,
                "kept": blue.id,
                "bundle_sha256": base["bundle_sha256"],
                "watch": verdict.as_dict(),
            },
        ) as tx:
            # The alias green was deployed from goes back with the traffic (decision 0004).
            full = carry_alias_back(
                self._registry, tx, full, left=green, to=blue.model_version, deployment=blue.id
            )
            tx.conn.execute(
                update(d)
                .where(d.c.id == base["id"])
                .values(status=ROLLED_BACK, url=None, details=canonical_json(full), updated_at=now)
            )
            tx.conn.execute(
                update(d).where(d.c.id == blue.id).values(status=ACTIVE, updated_at=now)
            )
            _activate(
                target,
                base["endpoint"],
                blue_instance,
                deployment=blue.id,
                model=blue.model,
                color=blue.color,
                front=details["endpoint_url"],
                port=self.router(base["endpoint"]).port,
            )

    def _record_watch_passed(self, base: dict[str, Any], verdict: WatchResult) -> None:
        d = tables.deployments
        record = self.get(base["id"])
        with self._meta.write(
            actor=self._actor,
            action="deployment.watch_passed",
            subject=f"deployment:{base['endpoint']}",
            payload={"id": base["id"], "model": record.model, "watch": verdict.as_dict()},
        ) as tx:
            tx.conn.execute(
                update(d)
                .where(d.c.id == base["id"])
                .values(
                    details=canonical_json({**record.details, "watch": verdict.as_dict()}),
                    updated_at=utc_timestamp(),
                )
            )

    def rollback(
        self,
        endpoint: str,
        *,
        ready_timeout: float = 60.0,
        watch: float | None = None,
        max_error_rate: float = 0.05,
        max_p99_ms: float = 500.0,
    ) -> Deployment:
        """Go back to the version the endpoint served before: a new blue/green deployment of
        the latest replaced deployment of another version (same readiness and smoke test),
        recorded as ``deployment.rolled_back_on_demand``.

        NotFound when nothing serves the endpoint; Conflict when nothing came before."""
        endpoint = validate_name(endpoint, field="endpoint")
        current = self.active(endpoint)
        if current is None:
            raise NotFound(f"endpoint {endpoint!r} has no active deployment to roll back")
        earlier = [
            h
            for h in self.list(endpoint, all=True)
            if h.status == REPLACED and h.model != current.model and h.id != current.id
        ]
        if not earlier:
            raise Conflict(
                f"endpoint {endpoint!r} has served only {current.model}: nothing to go back to"
            )
        previous = earlier[-1]
        return self.deploy(
            previous.model,
            endpoint=endpoint,
            target=current.target,
            trust=bool(previous.details.get("trust", False)),
            ready_timeout=ready_timeout,
            watch=watch,
            max_error_rate=max_error_rate,
            max_p99_ms=max_p99_ms,
            _rollback_of=current,
        )

    def _insert(
        self,
        conn: Connection,
        base: dict[str, Any],
        *,
        status: str,
        url: str | None,
        details: dict[str, Any],
        now: str,
    ) -> None:
        """One attempt's row (inside the caller's audited transaction)."""
        conn.execute(
            insert(tables.deployments).values(
                **base,
                status=status,
                url=url,
                details=canonical_json(details),
                created_at=now,
                created_by=self._actor,
                updated_at=now,
            )
        )

    def _apply_kubernetes(
        self, ref: str, endpoint: str, *, kserve: bool, namespace: str | None
    ) -> Deployment:
        """Bundle, then apply the manifests with kubectl (or only write them): one row and one
        audit event either way; a failed apply is recorded and raised."""
        if namespace is not None:
            namespace = validate_name(namespace, field="namespace")
        mv = self._registry.get(ref)
        if mv.status != ACTIVE:
            raise Conflict(f"{mv.ref} is {mv.status} and cannot be deployed")
        previous = self.active(endpoint)
        if previous is not None and previous.target != KUBERNETES:
            raise Conflict(
                f"endpoint {endpoint!r} runs on the {previous.target} target; stop it first"
            )
        deployment_id = uuid.uuid4().hex
        info = self.bundle(mv.ref, self.deployments_dir / endpoint / deployment_id / "bundle")
        base: dict[str, Any] = {
            "id": deployment_id,
            "endpoint": endpoint,
            "target": KUBERNETES,
            "model_name": mv.name,
            "model_version": mv.version,
            "bundle_sha256": info.digest,
            "color": None,
        }
        details: dict[str, Any] = {
            "ref": ref,
            "bundle": str(info.path),
            "image": image_name(info.manifest),
            "namespace": namespace,
            "kserve": kserve,
            "previous": previous.id if previous is not None else None,
            "previous_model": previous.model if previous is not None else None,
        }
        reason: str | None = None
        try:
            result = apply_manifests(info, kserve=kserve, namespace=namespace)
        except KubernetesError as exc:
            status, action, reason = FAILED, "deployment.failed", str(exc)
            details["reason"] = reason
        else:
            applied = result.applied
            status = ACTIVE if applied else WRITTEN
            action = "deployment.applied" if applied else "deployment.manifests_written"
            details["kubectl"] = {
                "command": result.shell_command,
                "applied": applied,
                "output": result.output[-2000:],
            }
        now = utc_timestamp()
        d = tables.deployments
        with self._meta.write(
            actor=self._actor,
            action=action,
            subject=f"deployment:{endpoint}",
            payload={
                "id": deployment_id,
                "model": mv.ref,
                "target": KUBERNETES,
                "bundle_sha256": info.digest,
                "reason": reason,
            },
        ) as tx:
            if status == ACTIVE and previous is not None:
                tx.conn.execute(
                    update(d).where(d.c.id == previous.id).values(status=REPLACED, updated_at=now)
                )
            self._insert(tx.conn, base, status=status, url=None, details=details, now=now)
        record = self.get(deployment_id)
        if status == FAILED:
            raise DeploymentFailed(
                f"deployment of {record.model} to {endpoint!r} failed: {reason}",
                deployment=record,
            )
        return record

    def router(self, endpoint: str) -> EndpointRouter:
        """The handle on ``endpoint``'s router (nothing is started by asking)."""
        endpoint = validate_name(endpoint, field="endpoint")
        return EndpointRouter(self.deployments_dir / endpoint / "router", endpoint=endpoint)

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
        if current.target == KUBERNETES:
            raise Conflict(
                f"endpoint {endpoint!r} runs on a Kubernetes cluster: remove it there with "
                f"`kubectl delete -f {current.details.get('bundle')}/kubernetes`"
            )
        tgt = open_target(current.target, self.deployments_dir)
        # The front door closes first: clients see the endpoint gone, not a 502 per request.
        self.router(endpoint).stop()
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
