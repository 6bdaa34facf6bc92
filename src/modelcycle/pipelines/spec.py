"""Steps and pipelines: what runs, and how values flow between steps (no execution here).

Wiring rule, checked when the :class:`Pipeline` is built:

- A step produces named outputs: by default one output named after the step; with
  ``@step(outputs=("train", "test"))`` several, and the function returns a dict with exactly
  those keys.
- Each parameter of a step function is filled, in this order, by the step output of the same
  name; else the pipeline parameter of that name (``Pipeline(params={...})`` defaults,
  ``required=(...)`` names a run must give); else the function's own default (which a run may
  override by name). A parameter named ``ctx`` receives the :class:`StepContext`.
- Anything else is an error at definition time, as are duplicate names and cycles.

Steps run in a topological order that keeps the listed order where the wiring allows.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, overload

from modelcycle.errors import InvalidInput
from modelcycle.names import validate_name
from modelcycle.settings import parse_section

__all__ = ["CONTEXT_PARAM", "Pipeline", "Step", "load_pipeline", "step"]

CONTEXT_PARAM = "ctx"


class Step:
    """A plain function marked as a pipeline step; calling it calls the function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        outputs: str | Sequence[str] | None = None,
        cache: bool = True,
    ) -> None:
        if not callable(fn):
            raise InvalidInput(f"{fn!r} is not a function", field="step")
        self.fn = fn
        self.name = validate_name(name or fn.__name__, field="step name")
        if outputs is None:
            outs: tuple[str, ...] = (self.name,)
        elif isinstance(outputs, str):
            outs = (outputs,)
        else:
            outs = tuple(outputs)
        if not outs or len(set(outs)) != len(outs):
            raise InvalidInput(
                f"step {self.name!r}: outputs must be distinct names, got {outs!r}",
                field="outputs",
            )
        for out in outs:
            if not out.isidentifier():
                raise InvalidInput(
                    f"step {self.name!r}: output {out!r} is not a Python identifier",
                    field="outputs",
                )
        self.outputs = outs
        self.cache = cache
        sig = inspect.signature(fn)
        self.parameters: tuple[str, ...] = ()
        self.defaults: dict[str, Any] = {}
        self.wants_context = False
        params: list[str] = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise InvalidInput(
                    f"step {self.name!r}: parameter {p.name!r} must be a plain named parameter "
                    "(no *args, **kwargs or positional-only)",
                    field="step",
                )
            if p.name == CONTEXT_PARAM:
                self.wants_context = True
                continue
            params.append(p.name)
            if p.default is not p.empty:
                self.defaults[p.name] = p.default
        self.parameters = tuple(params)
        self.source_sha256 = _source_hash(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Step({self.name!r}, outputs={list(self.outputs)!r})"

    def split_outputs(self, result: Any) -> dict[str, Any]:
        """The function's return value as ``{output name: value}``."""
        if len(self.outputs) == 1:
            return {self.outputs[0]: result}
        if not isinstance(result, Mapping) or set(result) != set(self.outputs):
            got = sorted(result) if isinstance(result, Mapping) else type(result).__name__
            raise InvalidInput(
                f"step {self.name!r} declares outputs {list(self.outputs)} and must return a "
                f"dict with exactly those keys; it returned {got}",
                field="outputs",
            )
        return {k: result[k] for k in self.outputs}


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *, name: str | None = None, outputs: str | Sequence[str] | None = None, cache: bool = True
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    cache: bool = True,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Mark a function as a step: ``@step`` or ``@step(name=..., outputs=..., cache=False)``.

    ``cache=False`` always executes the step (for side effects such as registering a model).
    """
    if fn is not None:
        return Step(fn)

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(f, name=name, outputs=outputs, cache=cache)

    return wrap


class Pipeline:
    """Steps wired into a DAG by name. Building one checks the wiring and does no I/O."""

    def __init__(
        self,
        name: str,
        steps: Iterable[Step],
        *,
        params: Mapping[str, Any] | None = None,
        required: Iterable[str] = (),
        description: str | None = None,
    ) -> None:
        self.name = validate_name(name, field="pipeline name")
        self.description = description
        # Where the pipeline is defined: runs record the git state of the repository holding it.
        self.module_file: str | None = _defining_file()
        listed = list(steps)
        if not listed:
            raise InvalidInput("a pipeline needs at least one step", field="steps")
        for s in listed:
            if not isinstance(s, Step):
                raise InvalidInput(
                    f"{s!r} is not a step; mark the function with @step", field="steps"
                )
        self.defaults: dict[str, Any] = dict(params or {})
        self.required: tuple[str, ...] = tuple(required)
        declared = set(self.defaults) | set(self.required)
        producers: dict[str, Step] = {}
        seen: set[str] = set()
        for s in listed:
            if s.name in seen:
                raise InvalidInput(f"two steps are named {s.name!r}", field="steps")
            seen.add(s.name)
            for out in s.outputs:
                if out in producers:
                    raise InvalidInput(
                        f"output {out!r} is produced by both {producers[out].name!r} and "
                        f"{s.name!r}",
                        field="steps",
                    )
                if out in declared:
                    raise InvalidInput(
                        f"output {out!r} of step {s.name!r} has the name of a pipeline parameter",
                        field="params",
                    )
                producers[out] = s
        # param name -> (producing step, output); anything else is a parameter
        self.wiring: dict[str, dict[str, str]] = {}
        tunable: set[str] = set(declared)
        for s in listed:
            wires: dict[str, str] = {}
            for p in s.parameters:
                if p in producers:
                    wires[p] = producers[p].name
                elif p in declared:
                    continue
                elif p in s.defaults:
                    tunable.add(p)
                else:
                    raise InvalidInput(
                        f"step {s.name!r}: parameter {p!r} has no source: no step outputs {p!r}, "
                        "the pipeline declares no such parameter (params=/required=) and it has "
                        "no default",
                        field=f"{s.name}.{p}",
                    )
            self.wiring[s.name] = wires
        self.param_names: frozenset[str] = frozenset(tunable)
        self.steps: tuple[Step, ...] = _topological(listed, self.wiring)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, steps={[s.name for s in self.steps]!r})"

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's parameters: the given values over the declared defaults; checked."""
        given = dict(given or {})
        unknown = sorted(set(given) - self.param_names)
        if unknown:
            known = ", ".join(sorted(self.param_names)) or "none"
            raise InvalidInput(
                f"pipeline {self.name!r} has no parameter {unknown[0]!r}; its parameters: {known}",
                field=f"params.{unknown[0]}",
            )
        missing = [p for p in self.required if p not in given]
        if missing:
            raise InvalidInput(
                f"pipeline {self.name!r} needs a value for {missing[0]!r}",
                field=f"params.{missing[0]}",
            )
        return {**self.defaults, **given}

    def step_params(self, s: Step, params: Mapping[str, Any]) -> dict[str, Any]:
        """What ``s`` receives from the run's parameters and its own defaults (not inputs)."""
        wires = self.wiring[s.name]
        out: dict[str, Any] = {}
        for p in s.parameters:
            if p in wires:
                continue
            out[p] = params[p] if p in params else s.defaults[p]
        return out


def _defining_file() -> str | None:
    """The source file of the first caller outside this module (None in a REPL)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    found = frame.f_globals.get("__file__") if frame is not None else None
    return str(found) if isinstance(found, str) else None


def _topological(listed: list[Step], wiring: dict[str, dict[str, str]]) -> tuple[Step, ...]:
    """Kahn's algorithm, taking the earliest listed ready step each time."""
    deps = {s.name: set(wiring[s.name].values()) for s in listed}
    done: list[Step] = []
    placed: set[str] = set()
    remaining = list(listed)
    while remaining:
        ready = next((s for s in remaining if deps[s.name] <= placed), None)
        if ready is None:
            names = ", ".join(s.name for s in remaining)
            raise InvalidInput(f"the steps {names} depend on each other in a cycle", field="steps")
        done.append(ready)
        placed.add(ready.name)
        remaining.remove(ready)
    return tuple(done)


def _source_hash(fn: Callable[..., Any]) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        data = source.encode("utf-8")
    except (OSError, TypeError):
        # No source file (defined in a REPL): hash the compiled code instead.
        code = getattr(fn, "__code__", None)
        data = (code.co_code + repr(code.co_consts).encode()) if code else repr(fn).encode()
    return hashlib.sha256(data).hexdigest()


def load_pipeline(ref: str, *, root: Path, config: Mapping[str, Any] | None = None) -> Pipeline:
    """The pipeline named ``ref``: ``package.module:attr``, or a name under ``[pipelines]`` in
    ``modelcycle.toml``. Modules are imported with the workspace root on ``sys.path``; one
    already imported is reloaded so that a run always uses the code as it is now."""
    target = ref
    if ":" not in ref:
        # [pipelines]: NAME = "module:attribute"
        declared: dict[str, str] = parse_section(config or {}, "pipelines", dict[str, str])
        if ref not in declared:
            names = ", ".join(sorted(declared))
            raise InvalidInput(
                f"{ref!r} is neither module:attribute nor a pipeline declared under [pipelines] "
                f"in modelcycle.toml (declared: {names or 'none'})",
                field="pipeline",
            )
        target = str(declared[ref])
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"{target!r} is not module:attribute", field="pipeline")
    root_str = str(root)
    if root_str in sys.path:
        sys.path.remove(root_str)
    sys.path.insert(0, root_str)  # this workspace's modules win over another's of that name
    try:
        module = _import_fresh(module_name, root)
    except ImportError as exc:
        raise InvalidInput(
            f"cannot import {module_name!r} ({exc}); the module must be importable from the "
            f"workspace root {root}",
            field="pipeline",
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidInput(f"module {module_name!r} has no {attr!r}", field="pipeline")
        obj = getattr(obj, part)
    if not isinstance(obj, Pipeline):
        raise InvalidInput(
            f"{target!r} is a {type(obj).__name__}, not a Pipeline", field="pipeline"
        )
    return obj


def _import_fresh(name: str, root: Path) -> ModuleType:
    """Import ``name`` as the workspace's code is now: a module from the workspace is
    reloaded; one of the same name imported from elsewhere (another workspace) is replaced."""
    module = sys.modules.get(name)
    if module is not None:
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root.resolve()):
            return importlib.reload(module)
        top = name.split(".")[0]
        if not ((root / f"{top}.py").exists() or (root / top).is_dir()):
            return module
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[key]
    importlib.invalidate_caches()
    return importlib.import_module(name)
