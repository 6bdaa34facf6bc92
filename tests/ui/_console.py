"""The console's test rig: a small workspace built with the SDK, a real uvicorn serving
``create_app`` on 127.0.0.1, and Debian's chromium driven by Playwright (never `playwright
install`). A module of its own (not conftest.py) so names stay explicit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from _servers import serve_app
from modelcycle import Workspace, init_workspace
from modelcycle.datasets import make_credit
from modelcycle.interfaces.http import ApiSettings, create_app
from modelcycle.store.tokens import TokenStore

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


_SCHEDULES = """
[[schedules]]
name = "nightly-note"
every = "1d"
do = "note"
with = { text = "nightly" }

[[sources]]
dataset = "credit"
path = "incoming/credit-*.parquet"

[[monitor]]
model = "credit@champion"
window = "6h"
every = "1h"

[promotion.production]
approvals = 1
"""


@dataclass
class Site:
    ws: Workspace
    url: str
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token text
    runs: list[str] = field(default_factory=list)  # the two training runs, oldest first
    job: str = ""
    check: int = 0


def build_workspace(root: Path) -> Site:
    """credit@1 and @2, two trained versions (different seeds and C), credit/1 champion and
    deployed to endpoint ``credit``, a drift check of @2 against @1 and one of the champion's
    logged inputs, a queued job, and one token per role."""
    ws, _ = init_workspace(root, db_url=f"sqlite:///{root / 'meta.db'}")
    with (root / "modelcycle.toml").open("a", encoding="utf-8") as config:
        config.write(_SCHEDULES)
    ws.close()
    ws = Workspace(root)  # reads the schedules, sources and monitor entries just added
    site = Site(ws, "")
    ws.datasets.add("credit", make_credit(1500, seed=1))
    ws.datasets.add("credit", make_credit(1500, seed=2, drift=0.6))
    first = ws.pipelines.train(data="credit@1", target="default", model="logreg", progress=False)
    second = ws.pipelines.train(
        data="credit@1", target="default", model="logreg", seed=7, params={"C": 0.5}, progress=False
    )
    site.runs = [first.id, second.id]
    check = ws.monitoring.drift("data:credit@1", "data:credit@2")
    site.check = check.id or 0
    ws.deploy("credit/1", endpoint="credit")  # a local process, stopped by the fixture's end
    _score_and_label(ws, "credit")
    # A check of credit/1's logged inputs (one column): the overview's drift sparkline. Before
    # the promotion, so the newest event on model:credit/1 stays the alias move.
    ws.monitoring.drift(model="credit/1", window="1h", columns=["age"])
    ws.registry.promote("credit/1", to="champion", force=True, reason="first champion")
    job, _ = ws.automations.queue.enqueue("note", {"text": "from the console tests"})
    site.job = job.id
    store = TokenStore(ws.metadata, ws.actor)
    for role in ("reader", "operator", "admin"):
        _, site.tokens[role] = store.create(f"{role}-person", role)
    return site


def _score_and_label(ws: Workspace, endpoint: str) -> None:
    """200 rows scored through the endpoint (the prediction log) and their true labels sent
    to its /feedback: what performance over time, measured and estimated, is computed from."""
    url = ws.deploy.active(endpoint).url  # type: ignore[union-attr]
    data = make_credit(200, seed=5, drift=0.3)
    labels = data.column("default").to_pylist()
    rows = data.drop_columns(["default"]).to_pylist()
    feedback = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in range(0, len(rows), 50):
            answer = client.post("/predict", json={"rows": rows[start : start + 50]})
            answer.raise_for_status()
            rid = answer.headers["x-request-id"]
            feedback += [
                {"request_id": rid, "row": i, "label": labels[start + i]} for i in range(50)
            ]
        client.post("/feedback", json={"feedback": feedback}).raise_for_status()


@contextmanager
def serve(site: Site) -> Iterator[Site]:
    app = create_app(site.ws, ApiSettings(token_refresh_seconds=0.0))
    with serve_app(app, what="the console server") as url:
        site.url = url
        yield site
