"""The queries behind the console's long lists, on both backends: the runs table (filter, sort
by a column or a metric, offset, count) and the audit timeline (actor, before an event)."""

from __future__ import annotations

import pytest

from modelcycle import Workspace
from modelcycle.pipelines import Pipeline, step
from modelcycle.store.audit_trail import AuditFilter


@step(cache=False)
def score(quality: float, fail: bool, ctx):  # type: ignore[no-untyped-def]
    if fail:
        raise RuntimeError("this run fails on purpose")
    ctx.log_metric("auc", quality)
    if quality > 0.7:
        ctx.log_metric("only_good", 1.0)
    return quality


def _runs(ws: Workspace) -> list[str]:
    """Five runs, oldest first: a (auc .6), b (.9), c failed, d (.75, other pipeline), e (.8)."""
    scoring = Pipeline("scoring", [score], params={"quality": 0.0, "fail": False})
    other = Pipeline("other", [score], params={"quality": 0.0, "fail": False})
    ids = []
    for pipe, quality, fail in ((scoring, 0.6, False), (scoring, 0.9, False),
                                (scoring, 0.5, True), (other, 0.75, False),
                                (scoring, 0.8, False)):  # fmt: skip
        ids.append(ws.pipelines.run(pipe, params={"quality": quality, "fail": fail}).id)
    return ids


def test_run_table_filters_sorts_and_pages_in_the_database(workspace: Workspace) -> None:
    a, b, c, d, e = _runs(workspace)
    table = workspace.pipelines.run_table
    newest = table(limit=2)
    assert [r.id for r in newest.runs] == [e, d]
    assert newest.total == 5
    assert newest.pipelines == ["other", "scoring"]
    assert newest.metric_names == ["auc", "only_good"]
    assert [r.id for r in table(limit=2, offset=4).runs] == [a]
    best = table(sort="m:auc", descending=True)
    assert [r.id for r in best.runs] == [b, e, d, a, c]  # the failed run has no auc: last
    worst = table(sort="m:auc", descending=False)
    assert [r.id for r in worst.runs] == [a, d, e, b, c]  # still last the other way round
    assert [r.id for r in table(sort="m:only_good").runs][-2:] == [c, a]  # ties: newest first
    assert [r.id for r in table(pipeline="scoring", status="succeeded").runs] == [e, b, a]
    assert table(status="failed").total == 1
    assert table(sort="duration").total == 5
    assert table(sort="pipeline", descending=False).runs[0].id == d


def test_run_table_refuses_a_bad_sort_or_limit(workspace: Workspace) -> None:
    from modelcycle.errors import InvalidInput

    with pytest.raises(InvalidInput, match="sort"):
        workspace.pipelines.run_table(sort="colour")
    with pytest.raises(InvalidInput, match="limit"):
        workspace.pipelines.run_table(limit=0)


def test_audit_events_by_actor_and_before_an_event(workspace: Workspace) -> None:
    _runs(workspace)
    every = workspace.audit.events()
    mine = workspace.audit.events(AuditFilter(actor="tester"))
    assert mine
    assert {e.actor for e in mine} == {"tester"}
    assert workspace.audit.events(AuditFilter(actor="nobody")) == []
    cut = every[-3].seq
    before = workspace.audit.events(AuditFilter(before_seq=cut, limit=2))
    assert [e.seq for e in before] == [cut - 2, cut - 1]
