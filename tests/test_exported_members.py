"""The public API is what the packages' ``__all__`` say, and it changes only on purpose.

Every name exported by ``modelcycle`` and by each stage package, with its kind and signature
(for a class: its constructor and its public methods and properties), is compared with the
checked-in list ``tests/public_api.txt``. A change to the surface fails here until the list
is regenerated and the diff reviewed with the change:

    MODELCYCLE_UPDATE_API=1 .venv/bin/pytest tests/test_exported_members.py
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import re
import types
from pathlib import Path

import modelcycle

PACKAGES = (
    "modelcycle",
    "modelcycle.errors",
    "modelcycle.audit",
    "modelcycle.datasets",
    "modelcycle.pipelines",
    "modelcycle.registry",
    "modelcycle.scoring",
    "modelcycle.monitoring",
    "modelcycle.deploy",
    "modelcycle.automations",
)
PINNED = Path(__file__).with_name("public_api.txt")


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # default values' addresses change per run


def _describe(package: str, name: str, obj: object) -> list[str]:
    where = f"{package}.{name}"
    if isinstance(obj, types.ModuleType):
        return [f"{where}: module"]
    if inspect.isclass(obj):
        lines = [f"{where}: class{_signature(obj)}"]
        # Members mixed in from modelcycle's own base classes are public here too.
        members: dict[str, object] = {}
        for klass in reversed(obj.__mro__):
            if klass.__module__.startswith("modelcycle"):
                members.update(vars(klass))
        for member, value in sorted(members.items()):
            if member.startswith("_"):
                continue
            if isinstance(value, property | functools.cached_property):
                lines.append(f"{where}.{member}: property")
            elif isinstance(value, staticmethod | classmethod):
                lines.append(
                    f"{where}.{member}: {type(value).__name__}{_signature(value.__func__)}"
                )
            elif inspect.isfunction(value):
                lines.append(f"{where}.{member}: method{_signature(value)}")
        return lines
    if callable(obj):
        return [f"{where}: function{_signature(obj)}"]
    return [f"{where}: {type(obj).__name__}"]


def exported_surface() -> list[str]:
    lines: list[str] = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            if name == "__version__":
                continue
            lines.extend(_describe(package, name, getattr(module, name)))
    return lines


def test_the_exported_surface_matches_the_checked_in_list() -> None:
    current = exported_surface()
    if os.environ.get("MODELCYCLE_UPDATE_API"):
        PINNED.write_text("\n".join(current) + "\n", encoding="utf-8")
    pinned = PINNED.read_text(encoding="utf-8").splitlines()
    diff = "\n".join(difflib.unified_diff(pinned, current, "public_api.txt", "now", lineterm=""))
    assert current == pinned, f"the public API changed:\n{diff}"


def test_all_exports_exist_and_are_sorted() -> None:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            assert hasattr(module, name), f"{package}.{name}"
    assert modelcycle.__all__ == sorted(modelcycle.__all__, key=lambda n: (not n[0].isupper(), n))


def test_nothing_public_leaks_in_beside_all() -> None:
    # Subpackages appear as attributes once anything imported them; they are not API members.
    public = {
        n
        for n in dir(modelcycle)
        if not n.startswith("_") and not isinstance(getattr(modelcycle, n), types.ModuleType)
    }
    assert public == set(modelcycle.__all__) - {"__version__"}


def test_the_comparison_can_fail() -> None:
    changed = _describe("m", "f", lambda a, b=1: None)
    assert changed == ["m.f: function(a, b=1)"]
    assert changed != _describe("m", "f", lambda a: None)
