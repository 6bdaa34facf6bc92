"""The one exception hierarchy of modelcycle.

    ModelcycleError                 every error modelcycle raises on purpose
     +-- InvalidInput               bad argument, file, name or request body (names the field)
     +-- NotFound                   no such workspace, artifact, version, alias ...
     +-- Conflict                   the change clashes with the current state
     |    +-- PreconditionFailed    the thing changed since the caller last read it (If-Match)
     +-- IntegrityError             stored content no longer matches its hash or chain
     +-- NotReady                   the workspace or database needs a step first (e.g. a migration)
     +-- Unauthorized               no or unknown credentials
     +-- Forbidden                  known credentials, not allowed to do this
     +-- OperationFailed            the work ran and did not succeed: a new version that failed
                                    its checks, a tool (podman, kubectl) that exited non-zero

Each message says what went wrong and, where there is one, what to do about it. The CLI prints
the message without a traceback; the HTTP layer maps each class to one status code.
"""

from __future__ import annotations

__all__ = [
    "HTTP_STATUS",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "ModelcycleError",
    "NotFound",
    "NotReady",
    "OperationFailed",
    "PreconditionFailed",
    "Unauthorized",
    "http_status_for",
]


class ModelcycleError(Exception):
    """Root of every error modelcycle raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(ModelcycleError):
    """An argument, file, name or request body is not what was expected.

    ``field`` names the offending input so that a caller (CLI, HTTP) can point at it.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFound(ModelcycleError):
    """The thing asked for does not exist."""


class Conflict(ModelcycleError):
    """The change clashes with the current state (already exists, concurrently changed)."""


class PreconditionFailed(Conflict):
    """The caller's view is stale: the thing moved since it was read (HTTP If-Match)."""


class IntegrityError(ModelcycleError):
    """Stored content does not match its hash, or the audit chain is broken."""


class NotReady(ModelcycleError):
    """The workspace or database must be prepared first; the message names the command."""


class Unauthorized(ModelcycleError):
    """Missing or unknown credentials."""


class Forbidden(ModelcycleError):
    """The credentials are known but not allowed to do this."""


class OperationFailed(ModelcycleError):
    """The request was valid and the work ran, but what it ran failed (a deployment that did
    not become ready or pass its smoke test, a container build, ``kubectl apply``). Where the
    attempt has a record it was written before this is raised."""


# -- HTTP: one table from error class to status code (the HTTP layers use only this) ----------
# A signature mismatch is an InvalidInput and answers 400, as MLflow's and KServe's servers do
# for a body that does not fit the model, so existing clients treat it as a client error.
HTTP_STATUS: dict[type[ModelcycleError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    IntegrityError: 500,
    NotReady: 503,
    # What modelcycle ran on the caller's behalf (a model server, podman, kubectl) failed:
    # the gateway's answer, not a fault of modelcycle itself (500) or of the request (4xx).
    OperationFailed: 502,
}


def http_status_for(error: ModelcycleError) -> int:
    """The HTTP status for ``error``: its nearest class in :data:`HTTP_STATUS`, else 500."""
    for kind in type(error).__mro__:
        status = HTTP_STATUS.get(kind)
        if status is not None:
            return status
    return 500
