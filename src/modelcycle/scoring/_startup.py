"""Process start-up of scoring jobs and servers: import only what loading the model needs.

``skops.io`` builds its default list of trusted types when first imported by calling
scikit-learn's ``all_estimators()``, which imports every scikit-learn module (and SciPy's
statistics, sparse graphs...): about a second of a batch job's wall time, spent on types the
model file does not name. modelcycle never relies on that default list: the skops flavor lists
the types a file names (``get_untrusted_types``) and trusts, explicitly, those that are classes
defined in scikit-learn. So :func:`import_skops_lazily` imports ``skops.io`` with an empty
default list; a type the default list would have held is then named by ``get_untrusted_types``
and trusted by the flavor's own rule, and loading trusts exactly the same types as before.

Importing ``skops.io`` also names every numpy and scipy ufunc (its default trusted functions):
for each of some 400 ufuncs skops' ``whichmodule`` asks every loaded module, in import order,
for an attribute of that name, about a tenth of a batch job's start-up in a process that has
imported a thousand modules. :func:`import_skops_lazily` swaps in :func:`_whichmodule`, which
gives the same module for the same object with one dictionary look-up per module instead of
a ``getattr`` that fails, for that import only.
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["freeze_heap", "import_skops_lazily"]


def import_skops_lazily() -> None:
    """Import ``skops.io`` without its scan of every scikit-learn estimator (once per process;
    nothing if it is already imported or not installed)."""
    if "skops.io" in sys.modules:
        return
    try:
        import sklearn.utils
    except ImportError:
        return
    original = sklearn.utils.all_estimators

    def no_scan(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
        return []

    sklearn.utils.all_estimators = no_scan
    hook = _FastWhichmodule()
    sys.meta_path.insert(0, hook)
    try:
        import skops.io  # noqa: F401 - imported for its side effect on sys.modules
    except ImportError:
        pass
    finally:
        sklearn.utils.all_estimators = original
        sys.meta_path.remove(hook)
        hook.restore()


class _FastWhichmodule(importlib.abc.MetaPathFinder):
    """While ``skops.io`` is imported: once ``skops.io._utils`` has run, its ``whichmodule`` is
    :func:`_whichmodule` (put back by :meth:`restore`)."""

    def __init__(self) -> None:
        self._utils: ModuleType | None = None
        self._original: Any = None

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "skops.io._utils":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader: Any = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original_exec(module)
            original = getattr(module, "whichmodule", None)
            if callable(original):
                self._utils, self._original = module, original
                _ORIGINAL_WHICHMODULE[0] = original
                setattr(module, "whichmodule", _whichmodule)  # noqa: B010 - a module's global

        loader.exec_module = exec_module
        return spec

    def restore(self) -> None:
        if self._utils is not None:
            setattr(self._utils, "whichmodule", self._original)  # noqa: B010
            self._utils = None


def _whichmodule(obj: Any, name: str) -> str:
    """skops' ``whichmodule``, the same answer: ``obj.__module__``, else the first module (in
    ``sys.modules`` order, as it was when the call began) whose attribute ``name`` is ``obj``,
    else ``"__main__"``.

    A plain module without a module-level ``__getattr__`` can only answer a name that is not a
    dunder from its ``__dict__``, so it is asked there; any other module is asked with
    ``getattr`` as skops does. Dotted and dunder names go to skops' own function."""
    module_name = getattr(obj, "__module__", None)
    if module_name is not None:
        return str(module_name)
    if "." in name or name.startswith("__"):
        return str(_ORIGINAL_WHICHMODULE[0](obj, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name, module in sys.modules.copy().items():
            if module_name in ("__main__", "__mp_main__") or module is None:
                continue
            try:
                if type(module) is ModuleType and "__getattr__" not in module.__dict__:
                    found = module.__dict__.get(name)
                else:
                    found = getattr(module, name, None)
            except (AttributeError, ImportError):
                continue
            if found is obj:
                return str(module_name)
    return "__main__"


# skops' whichmodule while _whichmodule stands in for it (set by _FastWhichmodule).
_ORIGINAL_WHICHMODULE: list[Any] = [None]


def freeze_heap() -> None:
    """Move everything alive now (modules, the loaded models) out of the cyclic collector's
    reach, once a server has loaded its models.

    A full collection otherwise walks those hundreds of thousands of long-lived objects: on
    the reference harness at concurrency 16 (loaded machine) one worker paused 190-900 ms in
    each of a few full collections a run, and every request in flight waited: that was the
    p99. With the heap frozen, no full collection ran after the load. Frozen objects are
    still freed by reference counting; only cycles among them would stay.
    """
    gc.collect()
    gc.freeze()
