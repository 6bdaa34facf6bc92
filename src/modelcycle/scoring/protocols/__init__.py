"""Thin protocol adapters: request bodies into Arrow tables, engine results into answers."""

from modelcycle.scoring.protocols._tabular import RequestInvalid

__all__ = ["RequestInvalid"]
