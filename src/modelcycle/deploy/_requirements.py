"""The bundle's ``requirements.lock`` and SBOM: exact versions of only what one model needs.

The roots are the model version's own requirements (what its flavor recorded at registration)
plus the scoring server's stack; the closure follows each installed distribution's
``Requires-Dist`` (extras left out, environment markers evaluated for this interpreter). Every
version is the one installed here. Wheel hashes are not in an installed distribution's
metadata, so they come from a hashed lock file (``uv pip compile --generate-hashes`` output)
when one is given, else from modelcycle's own lock, which ships inside the package
(``project-hashes.txt``, generated from the repository's ``requirements.lock``), where it pins
the installed version. A package neither knows at that version gets none. pip checks hashes
for all requirements or none (one ``--hash`` switches it to hash-checking mode), so a lock in
which some package has no hash is written with none at all (the SBOM keeps those known).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

__all__ = [
    "SERVER_STACK",
    "LockedPackage",
    "cyclonedx_sbom",
    "normalize",
    "parse_hashes",
    "project_hashes",
    "read_hashes",
    "render_lock",
    "render_project_hashes",
    "resolve",
]

# What `modelcycle.deploy.bundle_server` imports besides the model's flavor: the registry's
# data plane (numpy, pyarrow, pandas), modelcycle's foundation (SQLAlchemy, pydantic) and the
# HTTP server (starlette on uvicorn with httptools and uvloop, orjson), threadpoolctl, and
# prometheus_client (the scoring engine's /metrics, imported with the engine).
SERVER_STACK = (
    "numpy",
    "pyarrow",
    "pandas",
    "SQLAlchemy",
    "pydantic",
    "orjson",
    "starlette",
    "uvicorn",
    "httptools",
    "uvloop",
    "threadpoolctl",
    "prometheus_client",
)

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One pinned distribution: its name as published, exact version, known wheel hashes."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()
    requires: tuple[str, ...] = field(default=())

    @property
    def purl(self) -> str:
        return f"pkg:pypi/{normalize(self.name)}@{self.version}"

    def without_hashes(self) -> LockedPackage:
        return LockedPackage(self.name, self.version, (), self.requires)


def _marker_ok(requirement: str) -> bool:
    """Whether a Requires-Dist line applies here with no extras asked for."""
    _, _, marker = requirement.partition(";")
    marker = marker.strip()
    if not marker:
        return True
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:  # no packaging: keep what happens to be installed
        return True
    return bool(Marker(marker).evaluate({"extra": ""}))


def resolve(
    roots: Iterable[str],
    hashes: dict[str, tuple[str, list[str]]],
    fallback: dict[str, tuple[str, list[str]]] | None = None,
) -> list[LockedPackage]:
    """The installed distributions ``roots`` need (themselves included), sorted by name.

    ``roots`` are names or ``name==version`` pins; a root that is not installed is left out
    (the flavor's ``requirements`` list only what was installed at registration, too). A
    package's hashes come from ``hashes`` when it pins the installed version, else from
    ``fallback`` (modelcycle's own lock) when that does.
    """
    seen: dict[str, LockedPackage] = {}
    todo = []
    for root in roots:
        match = _NAME.match(root)
        if match:
            todo.append(match.group(1))
    while todo:
        name = todo.pop()
        key = normalize(name)
        if key in seen:
            continue
        try:
            dist = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            continue
        deps = []
        for req in dist.requires or []:
            if not _marker_ok(req):
                continue
            match = _NAME.match(req)
            if match:
                deps.append(match.group(1))
        version = dist.version
        known: tuple[str, ...] = ()
        for source in (hashes, fallback or {}):
            locked = source.get(key)
            if locked is not None and locked[0] == version and locked[1]:
                known = tuple(locked[1])
                break
        seen[key] = LockedPackage(
            name=dist.metadata["Name"] or name,
            version=version,
            hashes=known,
            requires=tuple(sorted({normalize(d) for d in deps})),
        )
        todo.extend(deps)
    # Only dependencies that are themselves installed (and so pinned) are listed.
    return [
        LockedPackage(p.name, p.version, p.hashes, tuple(r for r in p.requires if r in seen))
        for _, p in sorted(seen.items())
    ]


def read_hashes(lock_file: Path | None) -> dict[str, tuple[str, list[str]]]:
    """``{normalised name: (version, [sha256:...])}`` from a pip/uv lock with ``--hash`` lines."""
    if lock_file is None or not lock_file.is_file():
        return {}
    return parse_hashes(lock_file.read_text(encoding="utf-8"))


# The package data file holding modelcycle's own hashed lock.
PROJECT_HASHES = "project-hashes.txt"


def project_hashes() -> dict[str, tuple[str, list[str]]]:
    """modelcycle's own lock (the repository's ``requirements.lock``, shipped in the package)."""
    from importlib.resources import files

    return parse_hashes(files("modelcycle.deploy").joinpath(PROJECT_HASHES).read_text("utf-8"))


def render_project_hashes(lock_text: str) -> str:
    """The text of ``project-hashes.txt`` for a lock's text: each pin and its hashes, sorted,
    comments left out (``make``-free regeneration: see tests/evidence/test_hash_pinning.py)."""
    lines = [
        "# modelcycle's own lock: every pin of the repository's requirements.lock with its wheel",
        "# and sdist hashes, so a bundle made by an installed modelcycle pins its packages by",
        "# sha256. Generated, do not edit: MODELCYCLE_UPDATE_HASHES=1 pytest "
        "tests/evidence/test_hash_pinning.py",
    ]
    for key, (version, found) in sorted(parse_hashes(lock_text).items()):
        lines.append(f"{key}=={version}")
        lines.extend(f"    --hash={h}" for h in sorted(found))
    return "\n".join(lines) + "\n"


def parse_hashes(text: str) -> dict[str, tuple[str, list[str]]]:
    """:func:`read_hashes` of a lock's text."""
    out: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        entry = _LOCK_ENTRY.match(line)
        if entry:
            current = normalize(entry.group(1))
            out[current] = (entry.group(2), [])
        elif current is not None and line.startswith((" ", "\t")):
            out[current][1].extend(_HASH.findall(line))
        else:
            current = None
    return out


def render_lock(packages: list[LockedPackage], *, header: str) -> str:
    """pip's requirements format; hashes on continuation lines where known."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for p in packages:
        if p.hashes:
            lines.append(f"{p.name}=={p.version} \\")
            for i, h in enumerate(p.hashes):
                end = " \\" if i < len(p.hashes) - 1 else ""
                lines.append(f"    --hash={h}{end}")
        else:
            lines.append(f"{p.name}=={p.version}")
    return "\n".join(lines) + "\n"


def cyclonedx_sbom(
    packages: list[LockedPackage],
    *,
    subject: dict[str, Any],
    vendored: LockedPackage,
    timestamp: str,
    serial_seed: str,
) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM of the bundle's Python packages (deterministic for one input)."""

    def component(p: LockedPackage, scope_note: str | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "library",
            "bom-ref": p.purl,
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
        }
        if p.hashes:
            item["hashes"] = [{"alg": "SHA-256", "content": h.split(":", 1)[1]} for h in p.hashes]
        if scope_note:
            item["properties"] = [{"name": "io.modelcycle:delivery", "value": scope_note}]
        return item

    app_ref = f"modelcycle-bundle:{subject['name']}/{subject['version']}"
    components = [component(vendored, "vendored source in the bundle")]
    components += [component(p) for p in packages]
    by_name = {normalize(p.name): p.purl for p in packages}
    deps = [{"ref": app_ref, "dependsOn": sorted([vendored.purl, *by_name.values()])}]
    deps += [
        {"ref": p.purl, "dependsOn": sorted(by_name[r] for r in p.requires if r in by_name)}
        for p in packages
    ]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, serial_seed)}",
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [
                    {"type": "application", "name": "modelcycle", "version": vendored.version}
                ]
            },
            "component": {
                "type": "machine-learning-model",
                "bom-ref": app_ref,
                "name": subject["name"],
                "version": str(subject["version"]),
                "hashes": [{"alg": "SHA-256", "content": subject["sha256"]}],
            },
        },
        "components": components,
        "dependencies": deps,
    }
