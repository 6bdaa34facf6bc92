"""The public API is what ``modelcycle.__all__`` says, and nothing leaks in by accident."""

import types

import modelcycle


def test_all_exports_exist_and_are_sorted() -> None:
    for name in modelcycle.__all__:
        assert hasattr(modelcycle, name), name
    assert modelcycle.__all__ == sorted(modelcycle.__all__, key=lambda n: (not n[0].isupper(), n))


def test_public_surface_is_pinned() -> None:
    # Subpackages appear as attributes once anything imported them; they are not API members.
    public = {
        n
        for n in dir(modelcycle)
        if not n.startswith("_") and not isinstance(getattr(modelcycle, n), types.ModuleType)
    }
    assert public == set(modelcycle.__all__) - {"__version__"}


def test_every_error_derives_from_the_root() -> None:
    for name in (
        "InvalidInput",
        "NotFound",
        "Conflict",
        "IntegrityError",
        "NotReady",
        "Unauthorized",
        "Forbidden",
    ):
        assert issubclass(getattr(modelcycle, name), modelcycle.ModelcycleError)
