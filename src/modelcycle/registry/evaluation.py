"""The evaluation artifacts a training run linked to a version (tags naming sha256 blobs).

The built-in trainer tags each version with ``evaluation`` (JSON details: confusion matrix,
per-class figures, curves or residuals, permutation importance), ``evaluation_html`` (the same
as a self-contained page) and ``training_rows`` (the row hashes the promotion gate uses).
"""

from __future__ import annotations

import json
from typing import Any

from modelcycle.entities import ModelVersion
from modelcycle.errors import InvalidInput
from modelcycle.store import ArtifactStore

__all__ = ["EVALUATION_TAGS", "version_evaluation"]

EVALUATION_TAGS = ("evaluation", "evaluation_html", "training_rows")


def version_evaluation(artifacts: ArtifactStore, mv: ModelVersion) -> dict[str, Any] | None:
    """``{"artifacts": {tag: {"sha256", "size"}}, "details": {...}}``, or None when the
    version has no linked evaluation (registered by hand). The JSON is hash-checked on read."""
    linked = {tag: mv.tags[tag] for tag in EVALUATION_TAGS if mv.tags.get(tag)}
    if "evaluation" not in linked:
        return None
    data = artifacts.get_bytes(linked["evaluation"])  # IntegrityError if the blob was altered
    try:
        details = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise InvalidInput(
            f"{mv.ref}'s evaluation is not JSON ({exc})", field="evaluation"
        ) from exc
    return {
        "artifacts": {
            tag: {"sha256": sha, "size": artifacts.size(sha) if artifacts.exists(sha) else None}
            for tag, sha in linked.items()
        },
        "details": details,
    }
