"""The registry's errors and flavors. Its exported names and signatures are pinned with every
other package's in tests/public_api.txt (tests/test_exported_members.py)."""

import modelcycle.registry as registry


def test_errors_belong_to_the_root_hierarchy() -> None:
    from modelcycle.errors import Conflict, InvalidInput

    assert issubclass(registry.SignatureMismatch, InvalidInput)
    assert issubclass(registry.UntrustedModel, InvalidInput)
    assert issubclass(registry.PromotionRefused, Conflict)


def test_every_flavor_implements_the_interface() -> None:
    for name in ("skops", "onnx", "pickle"):
        flavor = registry.get_flavor(name)
        assert isinstance(flavor, registry.ModelFlavor)
        assert flavor.name == name
