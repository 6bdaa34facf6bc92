"""Each modelcycle.toml section is read by one model: a bad value or an unknown key is one line
naming ``section.key`` and what was expected (InvalidInput: exit 2), never a traceback."""

from __future__ import annotations

from datetime import timedelta
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


# -- the arrays of tables: [[rules]], [[schedules]], [[sources]], [[monitor]] ------------------

_RULE = 'name = "r"\non = "audit.note"\ndo = "note"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (f"[[rules]]\n{_RULE}[[rules]]\n{_RULE}wehre = {{}}\n",
         "rules[1].wehre: unknown key (expected one of: name, on, do, where, with, debounce,"),
        ('[[rules]]\nname = "r"\non = "audit.note"\n', "rules[0].do: required key is missing"),
        (f"[[rules]]\n{_RULE}max_attempts = 50\n",
         "rules[0].max_attempts: expected less than or equal to 20, got 50"),
        (f'[[rules]]\n{_RULE}max_attempts = "3"\n',
         "rules[0].max_attempts: expected a valid integer"),
        (f"[[rules]]\n{_RULE}with = 5\n", "rules[0].with: expected a table, got 5"),
        ('[[rules]]\nname = "r"\non = "nope"\ndo = "note"\n', "rules[0].on: expected one of "),
        (f"[[rules]]\n{_RULE}[[rules]]\n{_RULE}", "rules[1].name: two rules are named 'r'"),
        ('[[schedules]]\nname = "s"\nevery = "0s"\ndo = "note"\n',
         "schedules[0].every: expected at least 1s, got '0s'"),
        ('[[schedules]]\nname = "s"\nevery = 15\ndo = "note"\n',
         "schedules[0].every: expected a valid string, got 15"),
        ('[[schedules]]\nname = "s"\nevery = "1m"\ndo = "launch"\n',
         "schedules[0].do: 'launch' is not an action"),
        ('[[sources]]\ndataset = "d"\npath = "x"\nglob = true\n', "sources[0].glob: unknown key"),
        ('[[sources]]\ndataset = "a/b"\npath = "x"\n', "sources[0].dataset: expected a name"),
        ('[[sources]]\ndataset = "d"\npath = " "\n',
         "sources[0].path: expected a file, folder or glob"),
        ('[[monitor]]\nmodel = "m"\nwindow = "1h"\nevery = "1h"\nperformance = "yes"\n',
         "monitor[0].performance: expected a valid boolean, got 'yes'"),
        ('[[monitor]]\nmodel = "m"\nwindow = "soon"\nevery = "1h"\n',
         "monitor[0].window: expected a positive number and a unit"),
        ("rules = 3\n", "rules: expected a valid list"),
    ],
)  # fmt: skip
def test_an_array_section_names_section_index_key(root: Path, toml: str, expected: str) -> None:
    from modelcycle.automations import load_rules, load_schedules, load_sources
    from modelcycle.monitoring.schedule import monitor_entries
    from modelcycle.settings import read_config_file

    config = read_config_file(_with(root, toml) / "modelcycle.toml")

    def read_all() -> None:
        load_rules(config, ["note"])
        load_schedules(config, ["note"])
        load_sources(config)
        monitor_entries(config)

    with pytest.raises(InvalidInput) as bad:
        read_all()
    assert str(bad.value).startswith(f"modelcycle.toml {expected}"), str(bad.value)
    assert "\n" not in str(bad.value)


def test_good_array_sections_are_read(root: Path) -> None:
    from modelcycle.automations import load_rules, load_schedules, load_sources
    from modelcycle.settings import read_config_file

    toml = (
        f'[[rules]]\n{_RULE}with = {{ text = "{{subject}}" }}\ndebounce = "6h"\n'
        '[[schedules]]\nname = "s"\nevery = "15m"\ndo = "note"\n'
        '[[sources]]\ndataset = "d"\npath = " in/*.csv "\n'
    )
    config = read_config_file(_with(root, toml) / "modelcycle.toml")
    (rule,) = load_rules(config, ["note"])
    assert (rule.params, rule.debounce, rule.max_attempts) == (
        {"text": "{subject}"},
        timedelta(hours=6),
        3,
    )
    assert load_schedules(config, ["note"])[0].every == timedelta(minutes=15)
    assert [(s.dataset, s.path) for s in load_sources(config)] == [("d", "in/*.csv")]


def test_rules_check_exits_2_with_one_line(root: Path) -> None:
    _with(root, f"[[rules]]\n{_RULE}max_attempts = 50\n")
    proc = run_cli("rules", "check", cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: modelcycle.toml rules[0].max_attempts: expected less than or equal to 20, got 50"
    )
