"""The loop on the 1996 American National Election Studies survey (numeric codes; ``vote``
1 = Dole, 0 = Clinton): the first half of the respondents as anes@1, a champion trained on it,
drift against the second half, the whole survey appended as anes@2 and a retrained model gated
against the champion, deployed, redeployed and rolled back; then a worker started late, and
tampering. The tests share one workspace and run in file order (each step builds on the last).
See _realdata.py for where the data come from."""

from __future__ import annotations

import html
import json
import re
import sqlite3
import textwrap
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from _realdata import Project, anes96, project, table_row, write_csv
from sklearn.metrics import roc_auc_score

from deploy._deploy_helpers import wait_gone

TARGET = "vote"
HALF = 472
TRAIN = ["train", "--target", TARGET, "--task", "classification", "--model", "logreg"]


@pytest.fixture(scope="module")
def survey() -> pd.DataFrame:
    return anes96()


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory, survey: pd.DataFrame) -> Iterator[Project]:
    """anes@1 (the first half, from CSV) and anes/1 trained on it, the champion."""
    with project(tmp_path_factory, "anes96") as proj:
        write_csv(survey.iloc[:HALF], proj.root / "anes-first-half.csv")
        proj.cli("data", "add", "anes", "anes-first-half.csv")
        proj.cli(*TRAIN, "--data", "anes@1")
        proj.ws.registry.promote("anes/1", to="champion")
        yield proj


def _features(table: pa.Table) -> pa.Table:
    return table.drop_columns([TARGET])


def _endpoint_url(proj: Project) -> str:
    active = proj.ws.deploy.active("anes")
    assert active is not None
    assert active.url is not None
    return active.url


def _dataset(proj: Project, ref: str) -> pa.Table:
    name, version = ref.split("@")
    return proj.ws.datasets.get(name, int(version))


def _rows(frame: pd.DataFrame) -> set[tuple[float, ...]]:
    return set(map(tuple, frame.to_numpy(dtype=float).tolist()))


# -- item 13: a binary classifier's evaluation has its curves -----------------------------------


def test_the_champion_carries_roc_and_precision_recall_curves(an: Project) -> None:
    ws = an.ws
    mv = ws.registry.get("anes/1")
    details = ws.pipelines.output(mv.run_id or "", "evaluate", "evaluation")
    holdout = _dataset(an, mv.tags["holdout"])
    proba = ws.registry.load(mv.ref).predict_proba(_features(holdout))[:, 1]
    auc = roc_auc_score(holdout.column(TARGET).to_numpy(), proba)
    assert details["roc"]["auc"] == pytest.approx(auc, abs=1e-5)
    assert (details["roc"]["fpr"][0], details["roc"]["tpr"][-1]) == (0.0, 1.0)
    assert len(details["pr"]["precision"]) == len(details["pr"]["recall"]) > 2
    assert details["confusion_matrix"]["labels"] == ["0.0", "1.0"]
    page = ws.artifacts.get_bytes(mv.tags["evaluation_html"]).decode()
    assert "ROC curve" in page


# -- item 6: drift between the halves, shown by the test that decided it ------------------------


def test_drift_between_the_halves_shows_the_robust_test_behind_each_verdict(
    an: Project, survey: pd.DataFrame
) -> None:
    write_csv(survey.iloc[HALF:], an.root / "anes-second-half.csv")
    shown = an.out(
        "monitor", "drift", "--reference", "data:anes@1", "--current", "anes-second-half.csv",
        "--robust", "--report", "drift.html", "--save",
    )  # fmt: skip
    check = an.ws.monitoring.history()[-1]
    assert check.dataset_drift is True  # income rises through the file: real drift
    assert check.robust is True
    vote = next(d for d in check.drifted_details if d["name"] == TARGET)
    robust = vote["robust"]
    # A 0/1 column's default test is a z-test; robust mode decides with KS, BH and an effect.
    assert robust["test"] == "ks"
    row = table_row(shown, TARGET)
    assert " ks " in row
    assert " z " not in row  # the default test's figure is not shown beside the robust verdict
    assert f"{robust['p_adjusted']:.3g}" in row, row
    low, high = robust["effect_interval"]
    assert f"{low:.4g}" in row, row
    assert f"{high:.4g}" in row, row
    report = html.unescape(re.sub(r"<[^>]+>", " ", (an.root / "drift.html").read_text()))
    assert f"ks: adjusted p = {robust['p_adjusted']:.3g}" in " ".join(report.split())


# -- deploying the champion (item 11: one Date header through the router) ----------------------


def test_the_champion_deploys_and_answers_through_the_endpoint(
    an: Project, survey: pd.DataFrame
) -> None:
    done = an.out("deploy", "anes@champion", "--endpoint", "anes")
    assert "Deployed anes/1 to endpoint anes" in done
    url = _endpoint_url(an)
    rows = survey.iloc[HALF : HALF + 25]
    records = rows.drop(columns=[TARGET]).to_dict(orient="records")
    answer = httpx.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=30)
    assert answer.status_code == 200, answer.text
    expected = an.ws.registry.load("anes/1").predict(rows.drop(columns=[TARGET]))
    assert answer.json()["predictions"] == expected.tolist()
    assert len(answer.headers.get_list("date")) == 1, answer.headers
    shown = an.out("models", "show", "anes@champion")
    assert f"deployed: anes (local, {url})" in shown
    # item 5: the project folder is no git repository, so no code version is recorded
    assert "code version: -" in shown
    assert an.ws.registry.lineage("anes/1").code_version is None


# -- item 2: retraining on appended data, gated on rows neither model trained on ---------------


def test_retrain_on_appended_data_is_gated_on_rows_the_champion_never_saw(
    an: Project, survey: pd.DataFrame
) -> None:
    write_csv(survey, an.root / "anes-all.csv")
    ws = an.ws
    assert ws.datasets.add("anes", an.root / "anes-all.csv").version == 2
    first, appended = ws.datasets.get("anes", 1), ws.datasets.get("anes", 2)
    assert _rows(first.to_pandas()) <= _rows(appended.to_pandas())  # anes@2 contains anes@1
    an.cli(*TRAIN, "--data", "anes@2")
    v2 = ws.registry.get("anes/2")
    holdout_ref = v2.tags["holdout"]
    done = an.cli("models", "promote", "anes/2", "--to", "champion", check=False)
    message = done.stdout + done.stderr
    assert "excluded" in message, message

    # What the champion trained on: anes@1 less its own holdout. Those rows of the new holdout
    # must be left out, and both models scored on the rest.
    v1 = ws.registry.get("anes/1")
    h1 = _dataset(an, v1.tags["holdout"]).to_pandas()
    h2 = _dataset(an, holdout_ref).to_pandas()
    champion_train = _rows(first.to_pandas()) - _rows(h1)
    seen = np.array([r in champion_train for r in map(tuple, h2.to_numpy(float).tolist())])
    assert 0 < seen.sum() < len(h2)
    event = next(
        e
        for e in reversed(ws.audit.events())
        if e.action in ("model.promoted", "model.promotion_refused")
    )
    gate = event.payload["gate"] if event.action == "model.promoted" else event.payload
    assert gate["dataset"] == holdout_ref
    assert gate["rows"]["seen_in_training"]["champion"] == int(seen.sum())
    assert gate["rows"]["evaluated"] == int((~seen).sum())
    assert f"excluded as seen in training: {int(seen.sum())}" in message
    unseen = pa.Table.from_pandas(h2[~seen], preserve_index=False)
    for version in (1, 2):
        model = ws.registry.load(f"anes/{version}")
        proba = model.predict_proba(_features(unseen))[:, 1]
        auc = roc_auc_score(unseen.column(TARGET).to_numpy(), proba)
        side = "champion" if version == 1 else "candidate"
        assert gate[side]["score"] == pytest.approx(auc, rel=1e-9)
    # On these real rows the retrained model is the better one: it passes the gate.
    assert done.returncode == 0, message
    assert ws.registry.get("anes@champion").version == 2


# -- item 4: redeploy, then roll back: the alias goes back with the traffic ----------------------


def test_rollback_moves_the_champion_alias_back_to_the_version_it_serves(an: Project) -> None:
    ws = an.ws
    first = ws.deploy.active("anes")
    assert first is not None
    assert first.model == "anes/1"
    redeployed = an.out("deploy", "anes@champion", "--endpoint", "anes")
    assert "Deployed anes/2 to endpoint anes" in redeployed
    url = _endpoint_url(an)
    assert httpx.get(f"{url}/v2/models/anes", timeout=30).json()["versions"] == ["2"]
    done = an.out("deployments", "rollback", "anes")
    assert "from anes/2 to anes/1" in done
    assert httpx.get(f"{url}/v2/models/anes", timeout=30).json()["versions"] == ["1"]
    assert ws.registry.get("anes@champion").version == 1
    moved = [e for e in ws.audit.events() if e.action == "model.alias_moved"][-1]
    assert moved.subject == "model:anes/1"
    assert (moved.payload["alias"], moved.payload["from"], moved.payload["to"]) == (
        "champion",
        2,
        1,
    )
    assert moved.payload["reason"] == "rollback"
    assert f"deployed: anes (local, {url})" in an.out("models", "show", "anes@champion")
    # The endpoint is stopped here: the tampering test below leaves the workspace refusing writes.
    active = ws.deploy.active("anes")
    assert active is not None
    assert active.model == "anes/1"
    assert active.instance is not None
    assert active.instance.pid is not None
    ws.deploy.stop("anes")
    assert wait_gone(active.instance.pid)


# -- item 14: comparing runs, notes, forced promotions with a reason ---------------------------


def test_runs_compare_warns_about_different_holdouts_and_notes_are_audited(an: Project) -> None:
    ws = an.ws
    r1, r2 = ws.registry.get("anes/1").run_id, ws.registry.get("anes/2").run_id
    assert r1 is not None
    assert r2 is not None
    compared = an.cli("runs", "compare", r1, r2)
    text = compared.stdout + compared.stderr
    assert "holdout" in text.lower()
    assert "anes-holdout@1" in text
    assert ws.registry.get("anes/2").tags["holdout"] in text
    assert "warning" in text.lower()

    an.cli("models", "annotate", "anes/2", "--note", "trained on the whole 1996 survey")
    note = [e for e in ws.audit.events() if e.subject == "model:anes/2"][-1]
    assert "trained on the whole 1996 survey" in json.dumps(note.payload)
    # anes/2 is the challenger (the trainer's alias): forcing anes/1 there skips a gate
    an.cli(
        "models", "promote", "anes/1", "--to", "challenger", "--force",
        "--reason", "hand-picked after the 1996 review",
    )  # fmt: skip
    forced = [e for e in ws.audit.events() if e.action == "model.promoted"][-1]
    assert forced.subject == "model:anes/1"
    assert forced.payload["forced"] is True
    assert forced.payload["reason"] == "hand-picked after the 1996 review"


# -- item 1: a worker started after the events exist replays none of them ----------------------

RULE = """
[[rules]]
name = "retrain-anes"
on = "dataset.version_created"
where = { subject_name = "anes" }
do = "note"
with = { text = "would retrain on {subject_ref}", subject = "effect" }
"""


def test_a_worker_started_late_replays_nothing_and_takes_what_comes_next(
    an: Project, survey: pd.DataFrame
) -> None:
    config = an.root / "modelcycle.toml"
    config.write_text(config.read_text() + textwrap.dedent(RULE))
    ws = an.reopen()
    before = len(ws.registry.list("anes"))
    first = an.out("worker", "--once")
    assert "no job to run" in first
    assert ws.automations.queue.list() == []
    write_csv(survey.sample(frac=1.0, random_state=3), an.root / "anes-shuffled.csv")
    assert ws.datasets.add("anes", an.root / "anes-shuffled.csv").version == 3
    an.out("worker", "--once")
    jobs = ws.automations.queue.list()
    assert [(j.rule, j.state) for j in jobs] == [("retrain-anes", "succeeded")]
    effects = [e.payload["text"] for e in ws.audit.events() if e.subject == "effect"]
    assert len(effects) == 1
    assert effects[0].endswith("would retrain on anes@3")
    assert len(ws.registry.list("anes")) == before
    dry = an.out("rules", "backfill", "retrain-anes", "--since", "1")
    assert "anes@1" in dry
    assert "anes@2" in dry
    assert len(ws.automations.queue.list()) == 1  # a dry run queues nothing


# -- item 7: tampering is detected, then writes are refused until acknowledged -------------------


def test_tampering_is_detected_marked_and_stops_writes_until_acknowledged(an: Project) -> None:
    ws = an.ws
    promoted = next(e for e in ws.audit.events() if e.action == "model.promoted")
    forged = {**promoted.payload, "forced": True}
    db = an.root / ".modelcycle" / "modelcycle.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE audit_events SET payload = ? WHERE seq = ?",
            (json.dumps(forged, sort_keys=True, separators=(",", ":")), promoted.seq),
        )
    verify = an.cli("audit", "verify", check=False)
    assert verify.returncode == 1
    assert f"event {promoted.seq} altered" in verify.stderr

    head = ws.audit.events()[-1].seq
    for write in (
        ["audit", "note", "business as usual"],
        ["models", "alias", "set", "anes", "x", "2"],
    ):
        refused = an.cli(*write, check=False)
        assert refused.returncode == 5, refused.stdout + refused.stderr  # an integrity error
        assert f"broken at event {promoted.seq}" in refused.stderr
        assert "refused until an admin acknowledges" in refused.stderr
        assert "audit acknowledge" in refused.stderr
    assert ws.audit.events()[-1].seq == head  # nothing was written
    logged = [json.loads(line) for line in an.out("audit", "log", "--json").splitlines()]
    marked = {e["seq"]: e.get("tampered") for e in logged}
    assert marked[promoted.seq] is True
    assert [seq for seq, bad in marked.items() if bad] == [promoted.seq]

    an.cli("audit", "acknowledge", "--note", "test: payload edited in SQLite on purpose")
    an.cli("audit", "note", "back to work")
    assert ws.audit.events()[-1].payload["text"] == "back to work"
