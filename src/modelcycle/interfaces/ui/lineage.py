"""The lineage graph of a model version as positioned nodes and edges (the template draws SVG).

Columns left to right: data set versions -> run -> the version -> bundles -> deployments.
Layout is computed here (plain arithmetic, no JavaScript) so the graph renders without scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Graph", "Node", "lineage_graph"]

_COL = 190
_ROW = 56
_W = 160
_H = 34


@dataclass(frozen=True, slots=True)
class Node:
    key: str
    kind: str
    label: str
    href: str
    x: int
    y: int
    current: bool = False

    @property
    def cx_right(self) -> int:
        return self.x + _W

    @property
    def cy(self) -> int:
        return self.y + _H // 2


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: list[Node]
    edges: list[tuple[Node, Node]]
    width: int
    height: int
    node_w: int = _W
    node_h: int = _H


def lineage_graph(
    name: str,
    version: int,
    run_id: str | None,
    datasets: list[str],
    deployments: list[Any],
) -> Graph:
    """Nodes for one version's lineage; ``deployments`` are deploy records of this version."""
    columns: list[list[tuple[str, str, str, str, bool]]] = [[], [], [], [], []]
    for ref in datasets:
        dname, _, dver = ref.partition("@")
        href = f"/datasets/{dname}/versions/{dver}" if dver else f"/datasets/{dname}"
        columns[0].append((f"d:{ref}", "data set", ref, href, False))
    if run_id:
        columns[1].append((f"r:{run_id}", "run", f"run {run_id[:10]}", f"/runs/{run_id}", False))
    columns[2].append(
        (
            f"m:{name}/{version}",
            "model",
            f"{name}/{version}",
            f"/models/{name}/versions/{version}",
            True,
        )
    )
    bundles: dict[str, str] = {}
    for d in deployments:
        if d.bundle_sha256 not in bundles:
            bundles[d.bundle_sha256] = d.endpoint
            columns[3].append(
                (f"b:{d.bundle_sha256}", "bundle", f"bundle {d.bundle_sha256[:8]}",
                 f"/deployments/{d.endpoint}", False)
            )  # fmt: skip
        columns[4].append(
            (f"e:{d.id}", "deployment", f"{d.endpoint} ({d.status})", f"/deployments/{d.endpoint}",
             False)
        )  # fmt: skip
    used = [c for c in columns if c]
    rows = max(len(c) for c in used)
    height = rows * _ROW + 16
    nodes: dict[str, Node] = {}
    for i, column in enumerate(used):
        top = (height - len(column) * _ROW) // 2 + (_ROW - _H) // 2
        for j, (key, kind, label, href, current) in enumerate(column):
            nodes[key] = Node(key, kind, label, href, 8 + i * _COL, top + j * _ROW, current)
    edges: list[tuple[Node, Node]] = []
    model = nodes[f"m:{name}/{version}"]
    run = nodes.get(f"r:{run_id}") if run_id else None
    for ref in datasets:
        edges.append((nodes[f"d:{ref}"], run or model))
    if run is not None:
        edges.append((run, model))
    for d in deployments:
        bundle = nodes[f"b:{d.bundle_sha256}"]
        if (model, bundle) not in edges:
            edges.append((model, bundle))
        edges.append((bundle, nodes[f"e:{d.id}"]))
    width = 16 + (len(used) - 1) * _COL + _W
    return Graph(list(nodes.values()), edges, width, height)
