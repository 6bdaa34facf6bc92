"""``[promotion.<alias>] require_clean_commit = true``: only committed code reaches the alias.

A version qualifies when the run that trained it recorded a commit and a clean working tree
(pipelines/provenance.py ``code_version``); a version with no run, a run outside git, before the
first commit, or with uncommitted changes is refused, naming the run, and the refusal is kept
in the audit trail (``model.promotion_refused`` with ``rule: require_clean_commit``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from modelcycle.entities import ModelVersion
from modelcycle.errors import Conflict
from modelcycle.registry.approval_policy import PromotionPolicies
from modelcycle.store import MetadataStore, tables

__all__ = ["refuse_unclean_commit"]


def refuse_unclean_commit(
    meta: MetadataStore,
    policies: PromotionPolicies,
    candidate: ModelVersion,
    alias: str,
    actor: str,
) -> None:
    """Raise Conflict (after auditing it) when ``alias``'s policy requires a clean commit and
    ``candidate``'s run does not have one; return silently otherwise."""
    found = policies.for_alias(alias)
    if found is None or not found[1].require_clean_commit:
        return
    pattern = found[0]
    code = _run_code(meta, candidate.run_id)
    why = _problem(candidate.run_id, code)
    if why is None:
        return
    payload: dict[str, Any] = {
        "alias": alias,
        "rule": "require_clean_commit",
        "policy": f"promotion.{pattern}",
        "run": candidate.run_id,
        "commit": code.get("commit") if code else None,
        "dirty": code.get("dirty") if code else None,
        "reason": why,
    }
    with meta.write(
        actor=actor,
        action="model.promotion_refused",
        subject=f"model:{candidate.ref}",
        payload=payload,
    ):
        pass
    raise Conflict(
        f"{candidate.ref} not promoted to {alias}: [promotion.{pattern}] require_clean_commit, "
        f"and {why}"
    )


def _run_code(meta: MetadataStore, run_id: str | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    with meta.read() as conn:
        text = conn.execute(select(tables.runs.c.code).where(tables.runs.c.id == run_id)).scalar()
    if text is None:
        return None
    data = json.loads(text)
    return data if isinstance(data, dict) else None


def _problem(run_id: str | None, code: dict[str, Any] | None) -> str | None:
    """Why the run's code does not count as committed, or None when it does."""
    if run_id is None:
        return "it was registered without a training run (no commit recorded)"
    if code is None:
        return f"its run {run_id} is not recorded in this workspace"
    if not code.get("commit"):
        where = code.get("repository") or code.get("path") or "?"
        return f"its run {run_id} had no commit (code in {where})"
    if code.get("dirty"):
        return f"its run {run_id} had uncommitted changes on top of commit {code['commit'][:12]}"
    return None
