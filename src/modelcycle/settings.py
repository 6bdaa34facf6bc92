"""Settings: read once at the entry point (CLI, server, SDK constructor) and passed down.

Sources, later ones winning: built-in defaults, the workspace's ``modelcycle.toml``, then
``MODELCYCLE_*`` environment variables. Nothing here runs at import time.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelcycle.ci_context import detect_ci
from modelcycle.errors import InvalidInput, NotFound

__all__ = [
    "CONFIG_FILE",
    "STATE_DIR",
    "SectionModel",
    "Settings",
    "StoreSection",
    "find_workspace_root",
    "load_settings",
    "parse_section",
    "section_error",
]

STATE_DIR = ".modelcycle"
CONFIG_FILE = "modelcycle.toml"


class Settings(BaseModel):
    """Where the workspace lives, where its data goes, and who is acting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: Path
    db_url: str
    artifacts_url: str
    actor: str
    # The whole parsed modelcycle.toml, for the parts that own other sections (rules, sources).
    config: dict[str, Any] = {}
    # No workspace folder: configured by MODELCYCLE_DB_URL and an artifacts URL alone (a worker,
    # server or scoring container on any host); ``root`` is then only a deletable cache.
    stateless: bool = False
    # The modelcycle.toml read (a workspace's own, or MODELCYCLE_CONFIG's); None: none.
    config_file: Path | None = None
    # The CI run acting (ci_context.py), stamped on every audit event and run; None outside CI.
    ci: dict[str, str | None] | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def audit_head_path(self) -> Path:
        return self.state_dir / "audit.head"

    def local_dir(self, name: str) -> Path:
        """Where this process keeps files of its own (spilled rows, metric files): the state
        folder's ``name``, or in a stateless process (no workspace folder) ``modelcycle-name``
        in its deletable cache."""
        return self.root / f"modelcycle-{name}" if self.stateless else self.state_dir / name


def default_db_url(root: Path) -> str:
    """SQLite inside the workspace's state folder."""
    return f"sqlite:///{root / STATE_DIR / 'modelcycle.db'}"


def default_artifacts_url(root: Path) -> str:
    return str(root / STATE_DIR / "artifacts")


def find_workspace_root(
    start: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """``MODELCYCLE_HOME`` if set, else the nearest workspace from ``start`` upward."""
    env = os.environ if environ is None else environ
    home = env.get("MODELCYCLE_HOME")
    if home and start is None:
        root = Path(home).expanduser().resolve()
        if not (root / STATE_DIR).is_dir():
            raise NotFound(
                f"MODELCYCLE_HOME={home} is not a modelcycle workspace; "
                f"run `modelcycle init {home}` first"
            )
        return root
    here = (start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / STATE_DIR).is_dir():
            return folder
    raise NotFound(
        f"no modelcycle workspace in {here} or any folder above it; "
        "run `modelcycle init` there or set MODELCYCLE_HOME"
    )


def load_settings(
    path: Path | str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Find the workspace (``path``, else environment and current folder); read its settings."""
    env = os.environ if environ is None else environ
    try:
        root = find_workspace_root(Path(path) if path is not None else None, env)
    except NotFound:
        if path is not None or not env.get("MODELCYCLE_DB_URL") or env.get("MODELCYCLE_HOME"):
            raise
        return _stateless_settings(env)
    config = read_config_file(root / CONFIG_FILE)
    store = parse_section(config, "store", StoreSection)
    artifacts = (
        env.get("MODELCYCLE_ARTIFACTS_URL")
        or env.get("MODELCYCLE_ARTIFACTS")
        or store.artifacts
        or ""
    )
    values: dict[str, Any] = {
        "root": root,
        "db_url": env.get("MODELCYCLE_DB_URL") or store.db_url or default_db_url(root),
        "artifacts_url": _resolve_local(artifacts, root) or default_artifacts_url(root),
        "actor": _actor(env),
        "config": config,
        "config_file": root / CONFIG_FILE,
        "ci": _ci(env),
    }
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(first["msg"], field=f"{CONFIG_FILE} {field}") from exc


def _stateless_settings(env: Mapping[str, str]) -> Settings:
    """A workspace named by URLs alone: ``MODELCYCLE_DB_URL`` plus ``MODELCYCLE_ARTIFACTS_URL``.

    ``MODELCYCLE_CONFIG`` may point at a ``modelcycle.toml`` (a Kubernetes ConfigMap, say);
    ``MODELCYCLE_CACHE_DIR`` (default: the current folder) holds only what may be deleted.
    """
    artifacts = env.get("MODELCYCLE_ARTIFACTS_URL") or env.get("MODELCYCLE_ARTIFACTS") or ""
    if "://" not in artifacts or artifacts.startswith("file://"):
        raise NotFound(
            "no modelcycle workspace folder here, and MODELCYCLE_DB_URL alone does not name one: "
            "set MODELCYCLE_ARTIFACTS_URL to the shared artifact store (s3://bucket/prefix) too, "
            "or run `modelcycle init`"
        )
    config_path = env.get("MODELCYCLE_CONFIG")
    config = read_config_file(Path(config_path)) if config_path else {}
    root = Path(env.get("MODELCYCLE_CACHE_DIR") or Path.cwd()).expanduser().resolve()
    return Settings(
        root=root,
        db_url=env["MODELCYCLE_DB_URL"],
        artifacts_url=artifacts,
        actor=_actor(env),
        config=config,
        stateless=True,
        config_file=Path(config_path) if config_path else None,
        ci=_ci(env),
    )


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse ``modelcycle.toml``; a missing file is an empty configuration."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"is not valid TOML ({exc})", field=str(path)) from exc


def _resolve_local(url: str, root: Path) -> str:
    """Relative local paths in the config are relative to the workspace root."""
    if not url or "://" in url or Path(url).is_absolute():
        return url
    return str(root / url)


def _actor(env: Mapping[str, str]) -> str:
    """MODELCYCLE_ACTOR, else ``ci:<provider>:<user>`` inside CI, else the OS user."""
    found = detect_ci(env)
    return env.get("MODELCYCLE_ACTOR") or (found.default_actor if found else _os_user())


def _ci(env: Mapping[str, str]) -> dict[str, str | None] | None:
    found = detect_ci(env)
    return found.as_dict() if found else None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- Sections of modelcycle.toml: one pydantic model each, one error line each ------------------
# Each part that owns a section declares a ``SectionModel`` next to its code and reads it with
# ``parse_section``, so every bad value reaches the user as ``InvalidInput`` (exit 2, HTTP 400)
# naming ``section.key`` and what was expected, never as a pydantic traceback.


T = TypeVar("T")


class SectionModel(BaseModel):
    """Base of a ``modelcycle.toml`` section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSection(SectionModel):
    """``[store]``: where the metadata database and the artifacts are."""

    db_url: str | None = None
    artifacts: str | None = None  # a local folder (relative to the workspace) or a URL


def parse_section(config: Mapping[str, Any], name: str, model: type[T]) -> T:
    """Validate the section ``name`` (dotted for nested tables) of ``config`` as ``model``.

    ``model`` is a pydantic model or any type pydantic accepts (``list[Model]`` for an array
    of tables such as ``[[notify]]``). A missing section validates as ``{}`` (or ``[]`` for a
    list type); a bad one raises :class:`InvalidInput` whose field is ``section.key``.
    """
    from pydantic import TypeAdapter

    raw: Any = config
    for part in name.split("."):
        raw = raw.get(part) if isinstance(raw, Mapping) else None
    if raw is None:
        raw = [] if getattr(model, "__origin__", None) is list else {}
    try:
        return TypeAdapter(model).validate_python(raw)
    except ValidationError as exc:
        item = getattr(model, "__args__", (model,))[0]  # list[Model] names Model's keys
        fields = getattr(item, "model_fields", None) or {}
        keys = [f.alias or key for key, f in fields.items()]  # as written: "with", not "with_"
        raise section_error(exc, name, keys) from None


def section_error(exc: ValidationError, section: str, known: Sequence[str] = ()) -> InvalidInput:
    """The first problem of ``exc`` as one line: ``modelcycle.toml section.key: expected ...``.

    ``known`` lists the section's keys, named in the message when a key is unknown.
    """
    first = exc.errors()[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    field = f"{CONFIG_FILE} {section}{path}"
    if first["type"] == "extra_forbidden":
        message = "unknown key" + (f" (expected one of: {', '.join(known)})" if known else "")
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] in ("model_type", "dict_type", "model_attributes_type"):
        message = f"expected a table, got {first.get('input')!r}"
    elif first["type"] == "value_error":
        # A validator's own ValueError says what it expected ("a duration such as 30s, ...").
        message = f"expected {first.get('ctx', {}).get('error', first['msg'])}"
    else:
        message = f"expected {_lower_first(first['msg'].removeprefix('Input should be '))}"
        if "got" not in message and not isinstance(first.get("input"), dict | list):
            message += f", got {first['input']!r}"
    return InvalidInput(message, field=field)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
