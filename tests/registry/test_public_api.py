"""The registry's public surface is what ``modelcycle.registry.__all__`` says."""

import modelcycle.registry as registry


def test_public_surface_is_pinned() -> None:
    assert registry.__all__ == [
        "DEFAULT_MIN_ROWS",
        "ColumnProblem",
        "ColumnSpec",
        "Lineage",
        "LoadedModel",
        "ModelFlavor",
        "ModelRef",
        "ModelRegistry",
        "OutputSpec",
        "PromotionRefused",
        "PromotionResult",
        "Signature",
        "SignatureMismatch",
        "UntrustedModel",
        "alias_of_ref",
        "detect_flavor",
        "encode_row_hashes",
        "enforce",
        "get_flavor",
        "move_alias_back",
        "parse_model_ref",
        "row_hashes",
        "version_evaluation",
    ]
    for name in registry.__all__:
        assert hasattr(registry, name), name


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
