"""Each modelcycle.toml section is read by one model: a bad value or an unknown key is one line
naming ``section.key`` and what was expected (InvalidInput: exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cli import run_cli
from modelcycle import InvalidInput, Workspace, init_workspace
from modelcycle.settings import SectionModel, load_settings, parse_section


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("config")
    init_workspace(folder)
    return folder


def _with(root: Path, text: str) -> Path:
    (root / "modelcycle.toml").write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("toml", "open_part", "expected"),
    [
        (
            '[monitoring]\ndegradation = "abc"\n',
            lambda ws: ws.monitoring,
            "modelcycle.toml monitoring.degradation: expected a valid number",
        ),
        (
            "[monitoring]\nmin_rowz = 3\n",
            lambda ws: ws.monitoring,
            "modelcycle.toml monitoring.min_rowz: unknown key (expected one of: drift, ",
        ),
        (
            '[automations]\nbackoff_seconds = "soon"\n',
            lambda ws: ws.automations,
            "modelcycle.toml automations.backoff_seconds: expected a valid number",
        ),
        (
            "[automations]\nbackoff_seconds = -1\n",
            lambda ws: ws.automations,
            "modelcycle.toml automations.backoff_seconds: expected greater than or equal to 0",
        ),
    ],
)
def test_a_bad_section_names_section_dot_key(
    root: Path, toml: str, open_part: object, expected: str
) -> None:
    ws = Workspace(_with(root, toml))
    with pytest.raises(InvalidInput) as bad:
        open_part(ws)  # type: ignore[operator]
    assert str(bad.value).startswith(expected)
    assert "\n" not in str(bad.value)


def test_store_and_pipelines_sections(root: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^modelcycle.toml store.db_ur: unknown key"):
        load_settings(_with(root, '[store]\ndb_ur = "sqlite://"\n'))
    ws = Workspace(_with(root, "[pipelines]\ntrain = 5\n"))
    with pytest.raises(InvalidInput, match=r"^modelcycle.toml pipelines.train: expected a valid"):
        ws.pipelines.load("train")


def test_parse_section_of_an_array_of_tables() -> None:
    class Entry(SectionModel):
        url: str
        every: int = 1

    config = {"notify": [{"url": "a"}, {"url": "b", "every": "x"}]}
    with pytest.raises(InvalidInput, match=r"^modelcycle.toml notify\[1\].every: expected"):
        parse_section(config, "notify", list[Entry])
    assert parse_section({}, "notify", list[Entry]) == []
    assert parse_section({"a": {"b": {"url": "u"}}}, "a.b", Entry) == Entry(url="u")


def test_cli_exits_2_with_one_line(root: Path) -> None:
    _with(root, "[monitoring.drift]\ndrift_share = 0.3\n[monitoring]\nmin_rows = 1.5\n")
    (root / "a.csv").write_text("x\n1\n2\n3\n", encoding="utf-8")
    proc = run_cli("monitor", "drift", "-r", "a.csv", "-c", "a.csv", cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: modelcycle.toml monitoring.min_rows: expected")
    assert len(proc.stderr.strip().splitlines()) == 1
