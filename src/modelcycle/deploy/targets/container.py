"""The container target: the bundle built into an OCI image and run on 127.0.0.1.

The engine is podman (builds and runs; no daemon), else docker where a Docker engine answers.
An image build never reaches for the network for its Python packages: the bundle's
``requirements.lock`` is resolved by pip on this host into a wheelhouse (``wheels/`` in the
user's cache, ``~/.cache/modelcycle``, shared by every workspace; ``MODELCYCLE_WHEELHOUSE``
overrides) that podman mounts into the build read-only. The base image is ``--base-image`` or,
by default, ``localhost/modelcycle-base``: when it does not exist yet it is made once from a
Debian minbase (debootstrap) and kept in the engine's image store for later builds.
``prepare`` does that slow, once-per-machine work ahead of time (``make pytest`` runs it through
``scripts/prepare-containers.py`` before the timed tests).

The container runs with ``--init`` (SIGTERM reaches the server, which drains) and
``--network=host`` bound to 127.0.0.1, so the endpoint and the smoke test reach it exactly as
they reach a local process. Its log is copied to the deployment's folder when it stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from modelcycle.deploy._processes import free_port, port_free
from modelcycle.deploy._requirements import normalize, read_hashes
from modelcycle.deploy._templates import image_name
from modelcycle.deploy.bundle import BundleInfo
from modelcycle.deploy.targets.base import Instance, Target
from modelcycle.errors import Conflict, NotFound, NotReady, OperationFailed

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "ContainerError",
    "ContainerTarget",
    "Engine",
    "ImageBuild",
    "Prepared",
    "find_engine",
    "make_base_image",
    "prepare",
    "user_cache_dir",
    "wheelhouse_dir",
]

DEFAULT_BASE_IMAGE = "localhost/modelcycle-base:latest"
_INSTALL_HINT = (
    "install podman (Debian/Ubuntu: `apt-get install podman buildah runc`; "
    "debootstrap too to make the default base image), or run a Docker engine"
)
# What the machines this was built on need: runc (crun fails on hybrid cgroups) and ulimits a
# non-privileged runtime may set. Written next to the workspace's cache when the caller has
# not pointed CONTAINERS_CONF elsewhere.
_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# Left out of the base image: apt's caches and lists, documentation, man pages, translations.
_BASE_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)


class ContainerError(OperationFailed):
    """A container engine command failed; the message ends with the tail of its output."""


def _run_tool(
    argv: list[str],
    *,
    what: str,
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
    check: bool = True,
    errors_only: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; with ``check``, a failure is a ContainerError ending with the tail of its
    output (``errors_only``: only its lines that say ERROR, when there are any, as pip's)."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        if errors_only:
            lines = [line for line in lines if "ERROR" in line] or lines
        tail = "\n".join(lines[-12:])
        raise ContainerError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc


@dataclass(frozen=True, slots=True)
class Engine:
    """A container engine CLI: ``podman`` or ``docker``."""

    name: str
    path: str
    env: dict[str, str]

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 900.0,
        what: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return _run_tool(
            [self.path, *args],
            what=what or f"{self.name} {args[0]}",
            env={**self.env, **(extra_env or {})},
            timeout=timeout,
            check=check,
        )

    def image_exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False).returncode == 0


@dataclass(frozen=True, slots=True)
class ImageBuild:
    """A built image: its tag, id, size and how long the build took."""

    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    base_image: str
    base_seconds: float | None = None
    signer: str | None = None  # the bundle signer's key fingerprint, when the image carries it


def find_engine(cache_dir: Path | None = None) -> Engine:
    """podman if installed, else docker if its engine answers; NotReady says what to install."""
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and cache_dir is not None:
        conf = Path(cache_dir) / "containers.conf"
        if not conf.is_file():
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(_CONTAINERS_CONF, encoding="utf-8")
        env["CONTAINERS_CONF"] = str(conf)
    podman = shutil.which("podman", path=env.get("PATH"))
    if podman is not None:
        return Engine("podman", podman, env)
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is not None:
        probe = subprocess.run(
            [docker, "info"], capture_output=True, env=env, timeout=30, check=False
        )
        if probe.returncode == 0:
            return Engine("docker", docker, env)
        raise NotReady(f"the docker CLI is installed but no Docker engine answers; {_INSTALL_HINT}")
    raise NotReady(f"no container engine found; {_INSTALL_HINT}. `modelcycle bundle` still works")


def _debian_mirror() -> str:
    """The mirror apt uses here (MODELCYCLE_DEBIAN_MIRROR overrides)."""
    chosen = os.environ.get("MODELCYCLE_DEBIAN_MIRROR")
    if chosen:
        return chosen
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in re.finditer(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s*)?)(\S+)", text, re.M):
                uri = match.group(1)
                if "security" not in uri:
                    return uri
    return "http://deb.debian.org/debian"


def make_base_image(
    engine: Engine, tag: str = DEFAULT_BASE_IMAGE, *, suite: str = "bookworm"
) -> float:
    """Make the base image ``tag`` from a Debian minbase with python3 and its venv module;
    returns the seconds it took. Needs debootstrap and root."""
    debootstrap = shutil.which("debootstrap") or shutil.which("/usr/sbin/debootstrap")
    if debootstrap is None:
        raise NotReady(
            f"the base image {tag} does not exist and debootstrap, which makes it, is not "
            "installed: `apt-get install debootstrap`, or pass --base-image IMAGE (any image "
            "with python3 >= 3.11 and its venv module, e.g. python:3.11-slim)"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise NotReady(
            f"making the base image {tag} with debootstrap needs root; run it once as root "
            "or pass --base-image IMAGE"
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelcycle-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run_tool(
            [
                debootstrap,
                "--variant=minbase",
                "--include=python3,python3-venv",
                suite,
                str(rootfs),
                _debian_mirror(),
            ],
            what="debootstrap",
            timeout=1800,
        )
        for rel in _BASE_PRUNE:
            target = rootfs / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        tar = subprocess.Popen(
            ["tar", "--sort=name", "--numeric-owner", "-C", str(rootfs), "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            imported = subprocess.run(
                [engine.path, "import", "--change", 'CMD ["python3"]', "-", tag],
                stdin=tar.stdout,
                capture_output=True,
                text=True,
                env=engine.env,
                timeout=600,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if imported.returncode != 0:
            raise ContainerError(f"{engine.name} import failed:\n{imported.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def user_cache_dir() -> Path:
    """modelcycle's per-user cache (``$XDG_CACHE_HOME/modelcycle``, else ``~/.cache/modelcycle``):
    what every workspace of the user may share (wheels, the container preparation's status)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelcycle"


def wheelhouse_dir() -> Path:
    """Where the bundles' wheels are downloaded: ``MODELCYCLE_WHEELHOUSE``, else ``wheels`` in
    the user's cache. Shared by every workspace: a wheel is immutable (its file name pins name,
    version and platform) and, with ``--require-hashes``, checked against the lock at install."""
    chosen = os.environ.get("MODELCYCLE_WHEELHOUSE")
    return Path(chosen).expanduser() if chosen else user_cache_dir() / "wheels"


def _wheelhouse(bundle: BundleInfo) -> Path | None:
    """Download the bundle's pinned wheels into the shared wheelhouse with this host's pip
    (and its index settings); None when the image's Python (3.11) differs from this one's,
    in which case the build installs from the index itself."""
    if sys.version_info[:2] != (3, 11):
        return None
    wheels = wheelhouse_dir()
    wheels.mkdir(parents=True, exist_ok=True)
    lock = bundle.path / "requirements.lock"
    # One download at a time per wheelhouse: pip writes its files in place, and another build
    # must not mount a half-written wheel.
    with open(wheels / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not _all_present(read_hashes(lock), wheels):
            _download_wheels(lock, wheels)
    return wheels


def _download_wheels(lock: Path, wheels: Path) -> None:
    _run_tool(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-deps",
            "--dest",
            str(wheels),
            "--requirement",
            str(lock),
        ],
        what="downloading the bundle's wheels",
        timeout=1800,
        errors_only=True,
    )


def _all_present(pins: dict[str, tuple[str, list[str]]], wheels: Path) -> bool:
    """Whether the wheelhouse holds a wheel of every pinned name and version (wheel file
    names are ``NAME-VERSION-...whl``, NAME with '_' for '-')."""
    have = set()
    for path in wheels.glob("*.whl"):
        name, _, rest = path.name.partition("-")
        have.add((normalize(name), rest.split("-", 1)[0]))
    return all((name, version) in have for name, (version, _) in pins.items())


def build_image(engine: Engine, bundle: BundleInfo, *, base_image: str) -> ImageBuild:
    """Build the bundle's image (making the default base image first when it is missing)."""
    base_seconds: float | None = None
    if not engine.image_exists(base_image):
        if base_image != DEFAULT_BASE_IMAGE:
            raise NotFound(
                f"no base image {base_image} in {engine.name}'s image store: pull or load it "
                f"first, or leave --base-image out to use {DEFAULT_BASE_IMAGE}"
            )
        base_seconds = make_base_image(engine, base_image)
    tag = image_name(bundle.manifest)
    args = ["build", "--tag", tag, "--build-arg", f"BASE_IMAGE={base_image}"]
    if engine.name == "podman":
        # chroot isolation builds without a daemon or nested namespaces; the docker format
        # keeps HEALTHCHECK, which the OCI image format has no field for.
        args += ["--isolation", "chroot", "--format", "docker"]
        wheels = _wheelhouse(bundle)
        if wheels is not None:
            args += [
                "--volume",
                f"{wheels}:/wheels:ro",
                "--build-arg",
                "PIP_OPTIONS=--no-index --find-links /wheels",
            ]
    started = time.perf_counter()
    engine.run(
        *args,
        "--file",
        str(bundle.path / "Containerfile"),
        str(bundle.path),
        what=f"building image {tag}",
        timeout=1800,
    )
    # Imported here: signing needs `cryptography`, which a bundle's scoring server does not ship.
    from modelcycle.deploy.signing import signature_layer

    with tempfile.TemporaryDirectory(prefix="modelcycle-signature-") as context:
        layer = signature_layer(bundle, Path(context), tag)
        if layer is not None:  # the signature beside the bundle, the signer as a label
            fmt = ["--isolation", "chroot", "--format", "docker"] if engine.name == "podman" else []
            engine.run(
                "build", "--tag", tag, *fmt, "--file", str(layer[0]), context,
                what=f"adding the bundle's signature to {tag}", timeout=600,
            )  # fmt: skip
    seconds = time.perf_counter() - started
    shown = engine.run("image", "inspect", "--format", "{{.Id}} {{.Size}}", tag).stdout.split()
    signer = layer[1] if layer is not None else None
    return ImageBuild(tag, shown[0], int(shown[1]), seconds, base_image, base_seconds, signer)


@dataclass(frozen=True, slots=True)
class Prepared:
    """What :func:`prepare` did: the base image made (seconds) or found (None), and the
    warm-up image built from the sample bundle (None without one)."""

    engine: str
    base_image: str
    base_seconds: float | None
    wheelhouse: str
    image: ImageBuild | None


def prepare(
    cache_dir: Path, *, base_image: str = DEFAULT_BASE_IMAGE, bundle: BundleInfo | None = None
) -> Prepared:
    """Do once, ahead of time, the slow part of a first container deployment on a machine:
    make the default base image when it is missing, and (with a sample ``bundle``) download
    its wheels into the shared wheelhouse and build its image, which leaves the venv layer in
    the engine's build cache for every bundle with the same ``requirements.lock``. The same
    functions a deployment calls, so a later deployment finds all of it done."""
    engine = find_engine(cache_dir)
    base_seconds: float | None = None
    if not engine.image_exists(base_image):
        if base_image != DEFAULT_BASE_IMAGE:
            raise NotFound(f"no base image {base_image} in {engine.name}'s image store")
        base_seconds = make_base_image(engine, base_image)
    image = build_image(engine, bundle, base_image=base_image) if bundle is not None else None
    return Prepared(engine.name, base_image, base_seconds, str(wheelhouse_dir()), image)


class ContainerTarget(Target):
    """One container per deployment attempt, named ``modelcycle-ENDPOINT-ID``."""

    name: ClassVar[str] = "container"

    def __init__(
        self,
        deployments_dir: Path,
        *,
        base_image: str | None = None,
        export: Path | None = None,
        log_db: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = Path(deployments_dir)
        self.cache_dir = self.root.parent / "cache"
        self.base_image = base_image or DEFAULT_BASE_IMAGE
        self.export = Path(export) if export is not None else None
        self.log_db = log_db
        self.host = host
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = find_engine(self.cache_dir)
        return self._engine

    def check(self) -> None:
        self.engine  # noqa: B018 - finding the engine is the check

    def start(
        self,
        bundle: BundleInfo,
        *,
        endpoint: str,
        workdir: Path,
        port: int | None,
        trust: bool = False,
    ) -> Instance:
        engine = self.engine
        if port is not None and not port_free(self.host, port):
            raise Conflict(f"port {port} on {self.host} is in use")
        build = build_image(engine, bundle, base_image=self.base_image)
        exported: str | None = None
        if self.export is not None:
            self.export.parent.mkdir(parents=True, exist_ok=True)
            fmt = ["--format", "oci-archive"] if engine.name == "podman" else []
            engine.run(
                "save", *fmt, "--output", str(self.export), build.tag, what="exporting the image"
            )
            exported = str(self.export)
        chosen = port if port is not None else free_port(self.host)
        container = f"modelcycle-{endpoint}-{workdir.name[:12]}"
        run = ["run", "--detach", "--name", container, "--init", "--network=host"]
        log_env: dict[str, str] | None = None
        if self.log_db is not None and not self.log_db.startswith("sqlite"):
            # A network database the container can reach on the host network; the URL goes by
            # environment (it may hold a password), not argv. A SQLite file stays outside.
            run += ["--env", "MODELCYCLE_BUNDLE_LOG_DB"]
            log_env = {"MODELCYCLE_BUNDLE_LOG_DB": self.log_db}
        command = ["python3", "/opt/bundle/serve.py", "--host", self.host, "--port", str(chosen)]
        if trust:
            command.append("--trust")
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        proc = engine.run(
            *run, build.tag, *command, timeout=300, what=f"{engine.name} run", extra_env=log_env
        )
        return Instance(
            target=self.name,
            url=f"http://{self.host}:{chosen}",
            host=self.host,
            port=chosen,
            workdir=str(workdir),
            pid=None,
            log=str(workdir / "server.log"),
            extra={
                "engine": engine.name,
                "container": container,
                "container_id": proc.stdout.strip(),
                "image": build.tag,
                "image_id": build.image_id,
                "image_size_bytes": build.size_bytes,
                "build_seconds": round(build.seconds, 2),
                "base_image": build.base_image,
                "signer": build.signer,
                "base_image_seconds": (
                    round(build.base_seconds, 2) if build.base_seconds is not None else None
                ),
                "run_seconds": round(time.perf_counter() - started, 2),
                "export": exported,
                "command": command,
            },
        )

    def is_running(self, instance: Instance) -> bool:
        container = instance.extra.get("container")
        if not container:
            return False
        proc = self.engine.run(
            "container", "inspect", "--format", "{{.State.Running}}", container, check=False
        )
        return proc.returncode == 0 and proc.stdout.strip() == "true"

    def stop(self, instance: Instance, *, timeout: float = 10.0) -> bool:
        container = instance.extra.get("container")
        if not container:
            return False
        engine = self.engine
        was_running = self.is_running(instance)
        if was_running:
            engine.run("stop", "--time", str(int(timeout)), container, check=False)
        self._save_log(instance)
        engine.run("rm", "--force", container, check=False)
        return was_running

    def _save_log(self, instance: Instance) -> None:
        """Keep the container's log in the deployment folder: it goes with the container."""
        container = instance.extra.get("container")
        if not container or not instance.log:
            return
        proc = self.engine.run("logs", container, check=False)
        if proc.returncode == 0:
            Path(instance.log).write_text(proc.stdout + proc.stderr, encoding="utf-8")

    def logs(self, instance: Instance, *, tail: int | None = None) -> str:
        container = instance.extra.get("container")
        if container and self.is_running(instance):
            args = ["logs", *(["--tail", str(tail)] if tail is not None else []), container]
            proc = self.engine.run(*args, check=False)
            if proc.returncode == 0:
                return proc.stdout + proc.stderr
        return super().logs(instance, tail=tail)
