"""The deploy stage's facade (``ws.deploy``): bundles and the blue/green orchestration.

Every deployment attempt ends as one row of ``deployments`` written with its audit event in
one transaction (:mod:`modelcycle.deploy.records`): ``deployment.succeeded`` (status
``active``; the row it replaces becomes ``replaced``), ``deployment.rolled_back`` (the new
version failed beside a running one, which keeps serving), ``deployment.failed`` (nothing was
serving), ``deployment.stopped``, ``deployment.rolled_back_on_demand`` (``rollback``: the
previous version deployed again). A watch after the switch adds ``deployment.watch_passed``, or
turns the attempt's row into ``rolled_back`` (``deployment.rolled_back``) and its blue row back
into ``active``. A target that runs bundles elsewhere (Kubernetes) is handed the bundle
instead: ``deployment.applied``, ``deployment.manifests_written`` or ``deployment.failed``.

Clients reach an endpoint through its router (:mod:`modelcycle.deploy.router`) on a stable
port; a row's ``url`` is that stable URL, its instance's URL the version's own server.
"""

from __future__ import annotations

import builtins
import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.deploy._alias_follow import alias_note
from modelcycle.deploy.bundle import BundleInfo, build_bundle, verify_bundle
from modelcycle.deploy.records import (
    Attempt,
    Deployment,
    DeploymentRecords,
)
from modelcycle.deploy.rollout import (
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
from modelcycle.errors import (
    Conflict,
    InvalidInput,
    ModelcycleError,
    NotFound,
    NotReady,
    OperationFailed,
)
from modelcycle.names import validate_name
from modelcycle.statuses import DeploymentStatus, ModelVersionStatus
from modelcycle.store import ArtifactStore, MetadataStore

if TYPE_CHECKING:
    from modelcycle.entities import ModelVersion
    from modelcycle.registry import ModelRegistry

__all__ = ["DeployService", "Deployment", "DeploymentFailed"]

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


class DeploymentFailed(OperationFailed):
    """A deployment attempt failed (and was recorded); what served before still serves."""

    def __init__(self, message: str, *, deployment: Deployment) -> None:
        super().__init__(message)
        self.deployment = deployment


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
        self.records = DeploymentRecords(metadata, registry, actor)
        # [deploy] require_signed: checks each built bundle before anything starts (signing.py)
        self.bundle_gate: Callable[[BundleInfo, str], None] | None = None

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
        if mv.status != ModelVersionStatus.ACTIVE:
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
        info = self.records.run_code(mv.run_id)
        commit = info.get("commit") if info is not None else None
        if not commit:
            return None
        assert info is not None
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
        control_plane_image: str | None = None,
        _rollback_of: Deployment | None = None,
    ) -> Deployment:
        """Deploy ``ref`` to ``endpoint``: blue/green beside what serves there now, behind the
        endpoint's router on its stable ``port`` (fixed by the first deployment).

        Raises :class:`DeploymentFailed` (after recording it) when the new version does not
        start, become ready or pass the smoke test, or (``watch`` seconds after the switch)
        exceeds ``max_error_rate`` or ``max_p99_ms``; the old version keeps serving.
        ``control_plane_image``: with the kubernetes target and artifacts in a bucket, the image
        (modelcycle installed) whose init container fetches the bundle from the bucket.
        """
        endpoint = validate_name(endpoint, field="endpoint")
        if port is not None and not 0 < port < 65536:
            raise InvalidInput(f"must be within 1..65535, got {port}", field="port")
        if ready_timeout <= 0:
            raise InvalidInput("must be > 0", field="ready_timeout")
        tgt = open_target(
            target,
            self.deployments_dir,
            log_db=self._meta.url,
            base_image=base_image,
            export=Path(export) if export is not None else None,
            kserve=kserve,
            namespace=namespace,
            artifacts=self._artifacts,
            control_plane_image=control_plane_image,
        )
        if not tgt.runs_here:
            return self._hand_over(ref, endpoint, tgt)
        limits = _watch_limits(watch, max_error_rate, max_p99_ms)
        tgt.check()
        mv = self._registry.get(ref)
        if mv.status != ModelVersionStatus.ACTIVE:
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

    def _attempt(
        self,
        ref: str,
        mv: ModelVersion,
        endpoint: str,
        tgt: Target,
        previous: Deployment | None,
        *,
        color: str | None,
        **details: Any,
    ) -> tuple[Attempt, BundleInfo]:
        """Bundle ``mv`` into the attempt's own folder and fix what the attempt is."""
        deployment_id = uuid.uuid4().hex
        info = self.bundle(mv.ref, self.deployments_dir / endpoint / deployment_id / "bundle")
        if self.bundle_gate is not None:
            self.bundle_gate(info, endpoint)
        attempt = Attempt(
            id=deployment_id,
            endpoint=endpoint,
            target=tgt.name,
            model_name=mv.name,
            model_version=mv.version,
            bundle_sha256=info.digest,
            color=color,
            details={
                "ref": ref,
                "bundle": str(info.path),
                **details,
                "previous": previous.id if previous is not None else None,
                "previous_model": previous.model if previous is not None else None,
            },
        )
        return attempt, info

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
        color = _COLORS[1] if blue is not None and blue.color == _COLORS[0] else _COLORS[0]
        extra: dict[str, Any] = {"trust": trust, "endpoint_url": front}
        if rollback_of is not None:
            extra.update(reason=ROLLBACK_REQUESTED, rollback_of=rollback_of.id)
        attempt, info = self._attempt(ref, mv, endpoint, tgt, blue, color=color, **extra)
        workdir = self.deployments_dir / endpoint / attempt.id

        def commit(green: Instance) -> None:
            self._commit_success(attempt, green, expected_blue=blue, target=tgt, router=router)

        def watch_green(green: Instance) -> WatchResult:
            assert limits is not None
            return watch(
                lambda: router.stats(green.url), limits, is_running=lambda: tgt.is_running(green)
            )

        def revert(green: Instance, verdict: WatchResult) -> None:
            assert blue is not None
            assert blue_instance is not None
            self._point(router, blue_instance.url)  # traffic first, records second
            self.records.watch_failed(
                attempt,
                verdict,
                blue,
                point_back=lambda: _activate(
                    tgt,
                    endpoint,
                    blue_instance,
                    deployment=blue.id,
                    model=blue.model,
                    color=blue.color,
                    front=attempt.front,
                    port=self.router(endpoint).port,
                ),
            )

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
                self.records.watch_passed(attempt, result.watch)
            return self.get(attempt.id)
        if result.watch is not None:
            record = self.get(attempt.id)
            kept = f"; {attempt.details['previous_model']} serves endpoint {endpoint!r} again"
            raise DeploymentFailed(
                f"deployment of {mv.ref} to {endpoint!r} rolled back: {result.reason}{kept}"
                + alias_note(record.details),
                deployment=record,
            )
        record = self.records.failed(attempt, result, blue_running=blue_running)
        kept = (
            f"; {attempt.details['previous_model']} keeps serving endpoint {endpoint!r}"
            if blue_running
            else ""
        )
        verb = "rolled back" if blue_running else "failed"
        raise DeploymentFailed(
            f"deployment of {record.model} to {endpoint!r} {verb}: {result.reason}{kept}",
            deployment=record,
        )

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
        attempt: Attempt,
        green: Instance,
        *,
        expected_blue: Deployment | None,
        target: Target,
        router: EndpointRouter,
    ) -> None:
        def move_traffic() -> None:
            # The pointer and the router move inside the transaction: if either cannot, no row
            # says the switch happened (and the traffic is pointed back at blue below).
            _activate(
                target,
                attempt.endpoint,
                green,
                deployment=attempt.id,
                model=attempt.model,
                color=attempt.color,
                front=attempt.front,
                port=router.port,
            )
            self._point(router, green.url)

        switched = False
        try:
            self.records.switch(
                attempt, green, expected_blue=expected_blue, move_traffic=move_traffic
            )
            switched = True
        finally:
            if not switched and expected_blue is not None and expected_blue.instance is not None:
                # The rows did not move (or the pointer could not): neither does the traffic.
                with contextlib.suppress(ModelcycleError):
                    self._point(router, expected_blue.instance.url)

    def _point(self, router: EndpointRouter, url: str) -> None:
        """Send the endpoint's traffic to ``url``; a router found dead (or deaf) is started
        again, on the same port, forwarding there."""
        try:
            router.switch(url)
        except NotReady:
            router.stop()
            router.ensure(port=router.port, backend=url)

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
            if h.status == DeploymentStatus.REPLACED
            and h.model != current.model
            and h.id != current.id
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

    def _hand_over(self, ref: str, endpoint: str, tgt: Target) -> Deployment:
        """Bundle, then give it to a target that runs it elsewhere (Kubernetes: apply the
        manifests with kubectl, or only write them): one row and one audit event either way;
        a refused hand-over is recorded and raised."""
        mv = self._registry.get(ref)
        if mv.status != ModelVersionStatus.ACTIVE:
            raise Conflict(f"{mv.ref} is {mv.status} and cannot be deployed")
        previous = self.active(endpoint)
        if previous is not None and previous.target != tgt.name:
            raise Conflict(
                f"endpoint {endpoint!r} runs on the {previous.target} target; stop it first"
            )
        attempt, info = self._attempt(ref, mv, endpoint, tgt, previous, color=None)
        handed = tgt.hand_over(info)
        details = {**attempt.details, **handed.details}
        if handed.reason is not None:
            details["reason"] = handed.reason
        attempt = Attempt(**{**attempt.columns(), "details": details})
        if not handed.taken:
            status, action = DeploymentStatus.FAILED, "deployment.failed"
        elif handed.applied:
            status, action = DeploymentStatus.ACTIVE, "deployment.applied"
        else:
            status, action = DeploymentStatus.WRITTEN, "deployment.manifests_written"
        record = self.records.handed_over(
            attempt, status=status, action=action, reason=handed.reason, previous=previous
        )
        if status == DeploymentStatus.FAILED:
            raise DeploymentFailed(
                f"deployment of {record.model} to {endpoint!r} failed: {handed.reason}",
                deployment=record,
            )
        return record

    def router(self, endpoint: str) -> EndpointRouter:
        """The handle on ``endpoint``'s router (nothing is started by asking)."""
        endpoint = validate_name(endpoint, field="endpoint")
        return EndpointRouter(self.deployments_dir / endpoint / "router", endpoint=endpoint)

    # -- records ----------------------------------------------------------------------------

    def get(self, deployment_id: str) -> Deployment:
        return self.records.get(deployment_id)

    def active(self, endpoint: str) -> Deployment | None:
        """The deployment serving ``endpoint`` now, if any."""
        return self.records.active(endpoint)

    def list(self, endpoint: str | None = None, *, all: bool = False) -> builtins.list[Deployment]:
        """Active deployments (every attempt with ``all``), oldest first."""
        return self.records.list(endpoint, all=all)

    def show(self, endpoint: str) -> Deployment:
        """The active deployment of ``endpoint``, else its latest attempt."""
        history = self.list(endpoint, all=True)
        if not history:
            raise NotFound(f"no deployment to endpoint {endpoint!r}")
        active = [h for h in history if h.status == DeploymentStatus.ACTIVE]
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
        hint = tgt.stop_hint(current.details)
        if hint is not None:
            raise Conflict(f"endpoint {endpoint!r} {hint}")
        # The front door closes first: clients see the endpoint gone, not a 502 per request.
        self.router(endpoint).stop()
        instance = current.instance
        was_running = tgt.stop(instance) if instance is not None else False
        return self.records.stopped(
            current, was_running=was_running, clear_pointer=lambda: tgt.deactivate(endpoint)
        )

    def logs(self, endpoint: str, *, tail: int | None = None) -> str:
        """The server log of the endpoint's active deployment (else its latest attempt)."""
        record = self.show(endpoint)
        instance = record.instance
        if instance is None:
            return ""
        return open_target(record.target, self.deployments_dir).logs(instance, tail=tail)
