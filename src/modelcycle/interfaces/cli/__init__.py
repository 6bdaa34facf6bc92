"""The ``modelcycle`` command."""

from modelcycle.interfaces.cli.main import app, main

__all__ = ["app", "main"]
