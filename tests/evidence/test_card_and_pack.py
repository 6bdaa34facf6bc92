"""Model cards (figures recomputed here from the holdout) and evidence packs (signed round
trip; a replaced member, a traversal or symlink member, another key: each named)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from _cli import run_cli
from modelcycle import Workspace
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.evidence import build_card, build_pack, card_markdown, verify_pack

FEATURES = ["age", "income"]  # the model's inputs (see conftest.py)


@pytest.fixture(scope="module")
def card(ews: Workspace) -> dict:  # type: ignore[type-arg]
    return build_card(ews, "credit/2", slices=("region",))


def test_card_metrics_equal_a_recomputation_from_the_holdout(
    ews: Workspace,
    card: dict,  # type: ignore[type-arg]
) -> None:
    holdout = ews.datasets.get("credit_holdout", 1).to_pandas()
    model = ews.registry.load("credit/2").model
    y = holdout["target"].to_numpy()
    pred = model.predict(holdout[FEATURES])
    proba = model.predict_proba(holdout[FEATURES])[:, 1]
    figures = card["holdout"]["metrics"]
    assert card["holdout"]["rows"] == len(holdout) == 120
    assert figures["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred))
    assert figures["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, proba))
    for figure in figures.values():
        low, high = figure["ci95"]
        assert low <= figure["value"] <= high
        assert low < high
    rows = card["holdout"]["slices"]["region"]
    assert sum(r["rows"] for r in rows) == 120
    for r in rows:
        mask = holdout["region"].to_numpy() == r["value"]
        assert r["metrics"]["accuracy"] == pytest.approx(accuracy_score(y[mask], pred[mask]))


def test_card_sections_come_from_the_registry_and_the_audit_trail(
    card: dict,  # type: ignore[type-arg]
) -> None:
    assert card["intended_use"]["owner"] == "risk team"
    assert card["training_data"][0]["ref"] == "credit_train@1"
    assert card["training_data"][0]["rows"] == 200
    gate, refused = card["gates"]
    assert gate["result"] == "promoted"
    assert gate["metric"] == "accuracy"
    assert gate["candidate"]["version"] == 2
    assert gate["champion"]["version"] == 1
    assert np.isfinite(gate["champion"]["score"])
    # A refusal carries both models' scores too (the event keeps them at the top level).
    assert refused["result"] == "refused"
    assert (refused["subject"], refused["metric"]) == ("credit/1", "accuracy")
    assert refused["candidate"]["version"] == 1
    assert refused["champion"]["version"] == 2
    v2_accuracy = card["holdout"]["metrics"]["accuracy"]["value"]
    assert refused["champion"]["score"] == pytest.approx(v2_accuracy)
    assert refused["dataset"] == "credit_holdout@1"
    moves = [(c["alias"], c["from"], c["to"]) for c in card["changes"]]
    assert ("champion", 1, 2) in moves
    text = card_markdown(card)
    assert "| region | rows | roc_auc | accuracy | f1 | log_loss |" in text
    assert f"{card['holdout']['metrics']['accuracy']['value']:.4f}" in text


def test_card_from_the_cli_and_a_bad_slice(ews: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "card.html"
    proc = run_cli("models", "card", "credit@champion", "--format", "html", "--out", str(out),
                   cwd=ews.root, check=True)  # fmt: skip
    assert "Wrote the model card" in proc.stdout
    assert "<h1>Model card: credit/2</h1>" in out.read_text()
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        build_card(ews, "credit/2", slices=("nope",), resamples=10)


@pytest.fixture(scope="module")
def pack(ews: Workspace, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pack")
    public = folder / "default.pub"
    public.write_bytes(ews.keys.public_pem("default"))
    out = folder / "evidence.zip"
    build_pack(ews, "credit", out, since="1d", sign=True)
    return out, public


def test_pack_round_trip_from_the_cli(
    ews: Workspace, pack: tuple[Path, Path], tmp_path: Path
) -> None:
    out, public = pack
    names = zipfile.ZipFile(out).namelist()
    for member in ("README.md", "MANIFEST.json", "MANIFEST.json.dsse.json", "audit/audit.jsonl",
                   "audit/audit.jsonl.dsse.json", "audit/index.json", "cards/credit-2.md",
                   "cards/credit-1.md", "promotions.json", "drift/checks.json",
                   "verify_audit_export.py"):  # fmt: skip
        assert member in names
    proc = run_cli("audit", "verify", "--pack", str(out), "--public-key", str(public),
                   cwd=ews.root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert "credit-2.md" in proc.stdout
    # The pack's own copy of the stand-alone checker verifies the pack's export.
    with zipfile.ZipFile(out) as zf:
        for name in ("verify_audit_export.py", "audit/audit.jsonl", "audit/audit.jsonl.dsse.json"):
            (tmp_path / Path(name).name).write_bytes(zf.read(name))
    checked = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "verify_audit_export.py"),
         str(tmp_path / "audit.jsonl"), str(public)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("OK: ")


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None], extra: list[zipfile.ZipInfo]
             ) -> Path:  # fmt: skip
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change.get(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
        for info in extra:
            zout.writestr(info, b"x")
    return dst


def test_a_replaced_member_is_named(pack: tuple[Path, Path], tmp_path: Path) -> None:
    out, public = pack
    from modelcycle.audit.keys import load_public_key

    key = load_public_key(public.read_bytes())
    card_md = zipfile.ZipFile(out).read("cards/credit-2.md").replace(b"risk team", b"anyone!!!")
    bad = _rewrite(out, tmp_path / "a.zip", {"cards/credit-2.md": card_md}, [])
    problem, _ = verify_pack(bad, key)
    assert (
        problem == "cards/credit-2.md: its sha256 differs from the signed one (replaced or changed)"
    )
    gone = _rewrite(out, tmp_path / "b.zip", {"drift/checks.json": None}, [])
    assert verify_pack(gone, key)[0] == "drift/checks.json: signed but missing from the pack"
    unsigned = _rewrite(out, tmp_path / "c.zip", {"MANIFEST.json.dsse.json": None}, [])
    assert verify_pack(unsigned, key)[0] == "MANIFEST.json.dsse.json: the pack is not signed"


def test_signing_with_a_missing_key_writes_nothing(ews: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "evidence.zip"
    with pytest.raises(NotFound, match="no signing key 'nokey'"):
        build_pack(ews, "credit", out, sign=True, key="nokey")
    assert list(tmp_path.iterdir()) == []


def test_another_key_is_refused(ews: Workspace, pack: tuple[Path, Path]) -> None:
    other = ews.keys.ring.create("other-pack-key")
    problem, _ = verify_pack(pack[0], other.public_key)
    assert problem is not None
    assert problem.startswith("MANIFEST.json.dsse.json: signed by key")


def test_traversal_and_symlink_members_are_refused(pack: tuple[Path, Path], tmp_path: Path) -> None:
    from modelcycle.audit.keys import load_public_key

    key = load_public_key(pack[1].read_bytes())
    evil = _rewrite(pack[0], tmp_path / "evil.zip", {}, [zipfile.ZipInfo("../x")])
    with pytest.raises(InvalidInput, match="points outside the pack"):
        verify_pack(evil, key)
    link = zipfile.ZipInfo("cards/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    linked = _rewrite(pack[0], tmp_path / "link.zip", {}, [link])
    with pytest.raises(InvalidInput, match="is a symbolic link"):
        verify_pack(linked, key)
    assert not (tmp_path.parent / "x").exists()
    # From the CLI: exit 2 and one line naming the member; nothing extracted anywhere.
    before = set(tmp_path.parent.iterdir())
    for bad, why in ((evil, "'../x' points outside the pack"), (linked, "is a symbolic link")):
        done = run_cli("audit", "verify", "--pack", str(bad), "--public-key", str(pack[1]),
                       cwd=tmp_path)  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert why in done.stderr
    assert set(tmp_path.parent.iterdir()) == before
    manifest = json.loads(zipfile.ZipFile(pack[0]).read("MANIFEST.json"))
    assert manifest["model"] == "credit"
    assert not any("PRIVATE KEY" in zipfile.ZipFile(pack[0]).read(n).decode("utf-8", "replace")
                   for n in zipfile.ZipFile(pack[0]).namelist())  # fmt: skip


def test_card_over_http_for_a_reader(ews: Workspace, card: dict) -> None:  # type: ignore[type-arg]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
    from _api import serve  # the real uvicorn server the HTTP tests use

    with serve(ews) as api, api.client("reader") as client:
        got = client.get("/models/credit/versions/2/card")
        assert got.status_code == 200, got.text
        metrics = got.json()["holdout"]["metrics"]
        assert metrics["accuracy"] == card["holdout"]["metrics"]["accuracy"]
        md = client.get("/models/credit/versions/2/card", params={"format": "md"})
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith("# Model card: credit/2")
        assert client.get("/models/credit/versions/9/card").status_code == 404
        assert api.client(None).get("/models/credit/versions/2/card").status_code == 401
