""" "Why is this in production?" as a vertical graph: data set versions -> run -> model version
-> promotion (and its approval) -> bundle -> deployment, each node a link.

Built for a deployment (``deployment:ENDPOINT``: its live record, else its newest), an alias
(``model:NAME@ALIAS``) or a version (``model:NAME/V``). The layout is plain arithmetic here and
the template draws SVG, one column at most two nodes wide and 340 units across, so it reads on
a 390 px phone without scrolling sideways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelcycle.entities import AuditEvent
from modelcycle.errors import ModelcycleError

__all__ = ["WhyGraph", "WhyNode", "why_graph"]

WIDTH = 340
_ROW = 70  # node + the arrow's gap
_H = 46
_GAP = 12


@dataclass(frozen=True, slots=True)
class WhyNode:
    kind: str
    label: str
    detail: str
    href: str
    x: int
    y: int
    w: int

    @property
    def cx(self) -> int:
        return self.x + self.w // 2

    @property
    def bottom(self) -> int:
        return self.y + _H


@dataclass(frozen=True, slots=True)
class WhyGraph:
    nodes: list[WhyNode]
    edges: list[tuple[WhyNode, WhyNode]]
    width: int
    height: int
    version_subject: str  # the audit subject of the version the graph is about
    node_h: int = _H


_Row = list[tuple[str, str, str, str]]  # kind, label, detail, href


def why_graph(ws: Any, subject: str) -> WhyGraph | None:
    """The graph for ``subject``, or None when it names no deployment, alias or version."""
    kind, _, name = subject.partition(":")
    deployment = None
    alias: str | None = None
    try:
        if kind == "deployment" and name:
            deployment = ws.deploy.active(name) or next(
                iter(reversed(ws.deploy.list(name, all=True))), None
            )
            if deployment is None:
                return None
            ref = deployment.model
        elif kind == "model" and ("@" in name or "/" in name):
            alias = name.partition("@")[2] or None
            ref = ws.registry.get(name).ref
        else:
            return None
        lineage = ws.registry.lineage(ref)
    except ModelcycleError:
        return None
    mv = lineage.version
    rows: list[_Row] = []
    if lineage.datasets:
        rows.append([_dataset(ref, mv.tags.get("holdout")) for ref in lineage.datasets[:2]])
    if lineage.run_id:
        rows.append([("run", f"run {lineage.run_id[:10]}", "trained the version",
                      f"/runs/{lineage.run_id}")])  # fmt: skip
    rows.append([("model version", mv.ref, _aliases(mv.aliases),
                  f"/models/{mv.name}/versions/{mv.version}")])  # fmt: skip
    promoted = _promotion(lineage.events, alias)
    if promoted is not None:
        rows.append([_promotion_node(promoted)])
        request = promoted.payload.get("request")
        if isinstance(request, str):
            approvers = promoted.payload.get("approved_by") or []
            rows.append([("approval", f"request {request[:10]}",
                          "approved by " + (", ".join(map(str, approvers)) or "—"),
                          f"/approvals/{request}")])  # fmt: skip
    if deployment is not None:
        rows.append([("bundle", f"bundle {deployment.bundle_sha256[:12]}",
                      f"built for {deployment.target}",
                      f"/deployments/{deployment.endpoint}#history")])  # fmt: skip
        rows.append([("deployment", deployment.endpoint,
                      f"{deployment.status} · {deployment.created_at[:16].replace('T', ' ')}",
                      f"/deployments/{deployment.endpoint}")])  # fmt: skip
    return _layout(rows, f"model:{mv.ref}")


def _dataset(ref: str, holdout: str | None) -> tuple[str, str, str, str]:
    dname, _, dver = ref.partition("@")
    href = f"/datasets/{dname}/versions/{dver}" if dver else f"/datasets/{dname}"
    return ("data set", ref, "holdout" if ref == holdout else "training data", href)


def _aliases(aliases: tuple[str, ...]) -> str:
    return "aliases: " + ", ".join(sorted(aliases)) if aliases else "no alias now"


def _promotion(events: list[AuditEvent], alias: str | None) -> AuditEvent | None:
    """The newest promotion of the version (to ``alias`` when one is asked)."""
    for e in reversed(events):
        if e.action == "model.promoted" and (alias is None or e.payload.get("alias") == alias):
            return e
    return None


def _promotion_node(e: AuditEvent) -> tuple[str, str, str, str]:
    p = e.payload
    how = "forced" if p.get("forced") else "first holder" if p.get("first") else "through gate"
    return ("promotion", f"→ {p.get('alias', '?')} by {e.actor}",
            f"{how} · {e.at[:16].replace('T', ' ')}", f"/audit/events/{e.seq}")  # fmt: skip


def _layout(rows: list[_Row], version_subject: str) -> WhyGraph:
    nodes: list[WhyNode] = []
    edges: list[tuple[WhyNode, WhyNode]] = []
    above: list[WhyNode] = []
    for i, row in enumerate(rows):
        w = (WIDTH - 16 - _GAP * (len(row) - 1)) // len(row)
        placed = [
            WhyNode(kind, label, detail, href, 8 + j * (w + _GAP), 8 + i * _ROW, w)
            for j, (kind, label, detail, href) in enumerate(row)
        ]
        edges += [(a, b) for a in above for b in placed]
        nodes += placed
        above = placed
    return WhyGraph(nodes, edges, WIDTH, 16 + len(rows) * _ROW - (_ROW - _H), version_subject)
