"""Process start-up of scoring jobs and servers: import only what loading the model needs.

``skops.io`` builds its default list of trusted types when first imported by calling
scikit-learn's ``all_estimators()``, which imports every scikit-learn module (and SciPy's
statistics, sparse graphs...): about a second of a batch job's wall time, spent on types the
model file does not name. modelcycle never relies on that default list: the skops flavor lists
the types a file names (``get_untrusted_types``) and trusts, explicitly, those that are classes
defined in scikit-learn. So :func:`import_skops_lazily` imports ``skops.io`` with an empty
default list; a type the default list would have held is then named by ``get_untrusted_types``
and trusted by the flavor's own rule, and loading trusts exactly the same types as before.
"""

from __future__ import annotations

import gc
import sys
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
    try:
        import skops.io  # noqa: F401 - imported for its side effect on sys.modules
    except ImportError:
        pass
    finally:
        sklearn.utils.all_estimators = original


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
