"""``python -m modelcycle`` runs the CLI."""

from modelcycle.interfaces.cli import main

main()
