"""Start-up shortcuts give the same answers as the code they stand in for."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from modelcycle.scoring import _startup


def test_the_fast_whichmodule_names_every_ufunc_as_skops_does() -> None:
    """skops names its default trusted functions (numpy and scipy ufuncs) by the first loaded
    module holding them; the stand-in used while skops.io is imported must name the same."""
    pytest.importorskip("skops")
    _startup.import_skops_lazily()
    from skops.io import _trusted_types, _utils

    assert _utils.whichmodule is not _startup._whichmodule  # put back after the import
    ufuncs = [
        getattr(module, name)
        for module in (np, scipy.special)
        for name in dir(module)
        if isinstance(getattr(module, name), np.ufunc)
    ]
    assert len(ufuncs) > 100
    ours = [_startup._whichmodule(f, f.__name__) for f in ufuncs]
    theirs = [_utils.whichmodule(f, f.__name__) for f in ufuncs]
    assert ours == theirs
    # What skops.io built at import with the stand-in is what its own scan gives now.
    for module, names in (
        (scipy.special, _trusted_types.SCIPY_UFUNC_TYPE_NAMES),
        (np, _trusted_types.NUMPY_UFUNC_TYPE_NAMES),
    ):
        assert set(_utils.get_public_type_names(module=module, oftype=np.ufunc)) <= set(names)
    # An object no module holds under its name, and one with a __module__.
    stray = np.frompyfunc(lambda x: x, 1, 1)
    assert _startup._whichmodule(stray, "no_module_has_this") == "__main__"
    assert _startup._whichmodule(np.ndarray, "ndarray") == "numpy"
