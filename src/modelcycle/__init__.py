"""modelcycle: a self-hosted MLOps loop in one package.

Importing this package does no I/O and reads no environment; open a workspace with
``modelcycle.Workspace()``.
"""

from modelcycle._version import __version__
from modelcycle.entities import ArtifactRef, AuditEvent, ChainHead
from modelcycle.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    ModelcycleError,
    NotFound,
    NotReady,
    Unauthorized,
)
from modelcycle.workspace import Workspace, init_workspace

__all__ = [
    "ArtifactRef",
    "AuditEvent",
    "ChainHead",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "ModelcycleError",
    "NotFound",
    "NotReady",
    "Unauthorized",
    "Workspace",
    "__version__",
    "init_workspace",
]
