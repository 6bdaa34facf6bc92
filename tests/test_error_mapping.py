"""Every error a user can meet is a ModelcycleError with a deliberate exit code and HTTP status.

The public exception classes are found by an AST scan of ``src/modelcycle`` (every class whose
name does not start with ``_``, in a module whose path has no ``_``-prefixed part), then imported
and checked: each derives from ModelcycleError, and both tables (the CLI's ``EXIT_CODES``,
``modelcycle.errors.HTTP_STATUS``) map it through a class below the root, never by the
root's fallback (exit 1 / HTTP 500 by accident).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import modelcycle
from modelcycle.errors import HTTP_STATUS, ModelcycleError, OperationFailed
from modelcycle.interfaces.cli.main import EXIT_CODES

SRC = Path(modelcycle.__file__).resolve().parent

# Exceptions that never reach a user: each is caught where it is raised and turned into
# something else (an HTTP answer, a redirect, a retry).
INTERNAL = {
    "modelcycle.scoring.server.HttpProblem": "the scoring server turns it into its HTTP answer",
    "modelcycle.interfaces.ui.web.SignInNeeded": "the console turns it into a redirect",
    "modelcycle.audit.dsse.EnvelopeError": "audit verify turns it into its report",
}


def _public_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        if any(part.startswith("_") and part != "__init__" for part in rel.parts):
            continue
        if "migrations" in rel.parts:
            continue
        names = [
            node.name
            for node in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
        ]
        if not names:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        module = importlib.import_module(".".join(parts))
        for name in names:
            cls = getattr(module, name)
            internal = f"{module.__name__}.{name}" in INTERNAL
            if isinstance(cls, type) and issubclass(cls, BaseException) and not internal:
                found.append(cls)
    return found


def _mapped_by(table: dict[type[ModelcycleError], int], cls: type) -> type | None:
    """The class through which ``table`` maps ``cls`` (its nearest listed ancestor)."""
    return next((kind for kind in cls.__mro__ if kind in table), None)


CLASSES = _public_exception_classes()


def test_the_scan_finds_the_errors_it_should() -> None:
    names = {c.__name__ for c in CLASSES}
    assert {"InvalidInput", "DeploymentFailed", "ContainerError", "KubernetesError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_each_public_error_maps_to_a_deliberate_exit_code_and_status(cls: type) -> None:
    assert issubclass(cls, ModelcycleError)
    if cls is ModelcycleError:
        return
    assert _mapped_by(EXIT_CODES, cls) not in (None, ModelcycleError)
    assert _mapped_by(HTTP_STATUS, cls) not in (None, ModelcycleError)


def test_failed_work_exits_1_and_answers_502() -> None:
    from modelcycle.deploy import DeploymentFailed
    from modelcycle.deploy.targets.container import ContainerError
    from modelcycle.deploy.targets.kubernetes import KubernetesError

    for cls in (DeploymentFailed, ContainerError, KubernetesError):
        assert issubclass(cls, OperationFailed)
    assert EXIT_CODES[OperationFailed] == 1
    assert HTTP_STATUS[OperationFailed] == 502
