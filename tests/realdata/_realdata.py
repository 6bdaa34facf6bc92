"""Real public data for the ``tests/realdata`` suite, and a new user's project to run it in.

Every data set here ships inside a package installed in the project's virtualenv (test
dependencies in the lock file); nothing is downloaded at run time:

- **Palmer penguins** (``palmerpenguins.load_penguins()``, package palmerpenguins 0.1.6, which
  reads its bundled ``palmerpenguins/data/penguins.csv``): size measurements of 344 adult
  Adelie, Chinstrap and Gentoo penguins observed on islands of the Palmer Archipelago,
  Antarctica, 2007-2009, collected by Dr. Kristen Gorman and the Palmer Station Long Term
  Ecological Research Program (Gorman, Williams and Fraser, PLoS ONE 9(3): e90081, 2014).
  Text columns ``species``, ``island``, ``sex`` (11 missing) and numeric ones with missing
  values (2 in each measurement). The package states: the data are available under a CC-0
  licence, per the Palmer Station LTER Data Policy; the package itself is MIT-licensed.
- **ANES 1996** (``statsmodels.datasets.anes96``, statsmodels, BSD-3-Clause): 944 respondents
  of the 1996 American National Election Studies survey (http://www.electionstudies.org/),
  every column a number or a numeric code (party id 0-6, left-right scales 1-7, income and
  education brackets, ``vote`` 1 for Dole and 0 for Clinton). The rows come sorted (income
  rises through the file), so its two halves differ the way two months of a survey might.
  statsmodels states: "This is public domain."
- **RAND Health Insurance Experiment** (``statsmodels.datasets.randhie``): 20,190
  person-years of the RAND HIE (http://www.rand.org/health/projects/hie.html), as used in
  Cameron and Trivedi, *Microeconometrics* (2005): ``mdvis`` (doctor visits, a count), the
  coinsurance rate, deductible, physical limitation, chronic diseases and self-rated health
  dummies. statsmodels states: "This is in the public domain."

Data are written the way a user's export would be: CSV with empty fields for missing values
(``to_csv``'s default) and Parquet, in temporary folders. modelcycle is driven through its CLI
(:func:`_cli.run_cli`) and its SDK (:class:`modelcycle.Workspace`). Servers and deployments are
the scoring and deploy tests' own helpers (``ServerProcess``, ``kill_servers``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import statsmodels.datasets as sm_datasets
from palmerpenguins import load_penguins

from _cli import run_cli
from deploy._deploy_helpers import kill_servers
from modelcycle import Workspace, init_workspace

PENGUIN_FEATURES = [
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]


def penguins() -> pd.DataFrame:
    """The 344 penguins, in the package's order (by species, then island, then year)."""
    frame: pd.DataFrame = load_penguins()
    return frame


def anes96() -> pd.DataFrame:
    """The 944 ANES 1996 respondents; every column is float64, ``vote`` 0.0 or 1.0."""
    frame: pd.DataFrame = sm_datasets.anes96.load_pandas().data
    return frame


def randhie(rows: int) -> pd.DataFrame:
    """The first ``rows`` person-years of the RAND HIE (integer and float columns)."""
    frame: pd.DataFrame = sm_datasets.randhie.load_pandas().data
    return frame.head(rows).reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """A CSV export as pandas writes it: missing values (NaN and None) as empty fields."""
    frame.to_csv(path, index=False)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def read_scored(folder: Path) -> pd.DataFrame:
    """A batch job's output parts, in input order."""
    out: pd.DataFrame = pq.read_table(folder).to_pandas()
    return out


@dataclass
class Project:
    """A user's project folder holding a modelcycle workspace, and the SDK opened on it."""

    root: Path
    ws: Workspace

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.root, check=check)

    def out(self, *args: str) -> str:
        """stdout of a command that must succeed."""
        return self.cli(*args).stdout

    def json(self, *args: str) -> Any:
        """The parsed ``--json`` output of a command that must succeed."""
        return json.loads(self.out(*args, "--json"))

    def reopen(self) -> Workspace:
        """A new SDK handle (settings such as modelcycle.toml rules are read once per open)."""
        self.ws.close()
        self.ws = Workspace(self.root)
        return self.ws


@contextmanager
def project(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, git: bool = False
) -> Iterator[Project]:
    """A workspace in a new project folder (a git repository with one commit when ``git``);
    every server started under it is killed afterwards. Set up through the SDK: each CLI
    command costs a second of interpreter start, so the tests keep the CLI for what they check."""
    root = tmp_path_factory.mktemp(name) / "project"
    root.mkdir()
    mp = pytest.MonkeyPatch()
    for key in [k for k in os.environ if k.startswith("MODELCYCLE_")]:
        mp.delenv(key)
    mp.setenv("MODELCYCLE_ACTOR", "tester")
    ws, _ = init_workspace(root)
    if git:
        _git_repo(root)
    proj = Project(root, ws)
    try:
        yield proj
    finally:
        kill_servers(root)
        proj.ws.close()
        mp.undo()


def _git_repo(root: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "user",
        "GIT_AUTHOR_EMAIL": "user@example.invalid",
        "GIT_COMMITTER_NAME": "user",
        "GIT_COMMITTER_EMAIL": "user@example.invalid",
    }
    # As a project keeps it: the configuration committed, the workspace state and data ignored.
    (root / ".gitignore").write_text(".modelcycle/\n*.csv\n*.parquet\n*.html\nscored/\n")
    (root / "README.md").write_text("a data scientist's project\n")
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "start"]):
        subprocess.run(["git", *cmd], cwd=root, env=env, check=True, capture_output=True)


def git_head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


def table_row(text: str, first_cell: str) -> str:
    """The line of a Rich table whose first cell is ``first_cell``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == first_cell:
            return line
    raise AssertionError(f"no table row {first_cell!r} in:\n{text}")
