"""Names users give to things (data sets, models, aliases, endpoints): one rule, checked everywhere.

A name starts with a letter or digit and continues with letters, digits, ``.``, ``_`` or ``-``,
at most 128 characters, and never contains ``..``: it is safe as a path segment, a URL segment
and a Kubernetes-ish label once lower-cased.
"""

from __future__ import annotations

import re

from modelcycle.errors import InvalidInput

__all__ = ["validate_name"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_name(name: str, *, field: str = "name") -> str:
    """Return ``name`` if it follows the naming rule, else raise InvalidInput naming ``field``."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidInput(
            f"{name!r} is not a valid name; use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' or '/'",
            field=field,
        )
    return name
