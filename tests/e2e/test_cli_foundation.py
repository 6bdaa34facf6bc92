"""The foundation through the real ``modelcycle`` command: init, discovery, errors, audit."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from _cli import run_cli
from modelcycle import __version__


def test_version_and_help(tmp_path: Path) -> None:
    proc = run_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"modelcycle {__version__}"
    for args in (
        ["--help"],
        ["init", "--help"],
        ["audit", "--help"],
        ["audit", "log", "--help"],
        ["audit", "verify", "--help"],
        ["audit", "export", "--help"],
        ["audit", "note", "--help"],
        ["artifacts", "put", "--help"],
        ["db", "upgrade", "--help"],
    ):
        help_proc = run_cli(*args, cwd=tmp_path)
        assert help_proc.returncode == 0, args
        assert "Usage" in help_proc.stdout


def test_usage_errors_are_short_and_exit_2(tmp_path: Path) -> None:
    for args, says in (
        (["models", "show"], "Missing argument 'ref'"),
        (["deploy", "credit/1"], "Missing option '--endpoint'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["score", "m/1", "--input", "x", "--output", "y", "--chunk-rows", "0"], "--chunk-rows"),
    ):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, args
        assert says in proc.stderr, args
        assert "Traceback" not in proc.stderr, args


def test_init_creates_the_workspace_and_records_it(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    proc = run_cli("init", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (root / ".modelcycle" / "modelcycle.db").is_file()
    assert (root / "modelcycle.toml").is_file()
    log = run_cli("audit", "log", "--json", cwd=root)
    events = [json.loads(line) for line in log.stdout.splitlines()]
    assert [e["action"] for e in events] == ["workspace.created"]
    assert events[0]["actor"] == "tester"
    again = run_cli("init", str(root), cwd=tmp_path)
    assert again.returncode == 4
    assert "already a modelcycle workspace" in again.stderr


def test_workspace_is_found_upward_and_from_modelcycle_home(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root), cwd=tmp_path, check=True)
    deep = root / "src" / "a" / "b"
    deep.mkdir(parents=True)
    assert run_cli("audit", "note", "from below", cwd=deep).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_cli("audit", "note", "via home", cwd=elsewhere, env={"MODELCYCLE_HOME": str(root)})
    assert proc.returncode == 0, proc.stderr
    texts = [
        json.loads(x)["payload"].get("text")
        for x in run_cli("audit", "log", "--json", cwd=root).stdout.splitlines()
    ]
    assert texts[1:] == ["from below", "via home"]


def test_outside_a_workspace_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("audit", "log", cwd=tmp_path)
    assert proc.returncode == 3
    assert "no modelcycle workspace" in proc.stderr
    assert "modelcycle init" in proc.stderr
    assert "Traceback" not in proc.stderr
    home = run_cli("audit", "log", cwd=tmp_path, env={"MODELCYCLE_HOME": str(tmp_path / "nope")})
    assert home.returncode == 3
    assert "MODELCYCLE_HOME" in home.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "audit", "log", cwd=tmp_path)
    assert proc.returncode == 3
    assert "Traceback" in proc.stderr


def test_bad_database_url_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    proc = run_cli("init", str(root), "--db-url", "mysql://x@y/z", cwd=tmp_path)
    assert proc.returncode == 2
    assert "db_url" in proc.stderr
    assert "postgresql+psycopg" in proc.stderr
    assert not (root / ".modelcycle").exists()
    assert not (root / "modelcycle.toml").exists()


def test_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "pg"
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/none"
    proc = run_cli("init", str(root), "--db-url", url, cwd=tmp_path)
    assert proc.returncode == 6
    assert "cannot open the database" in proc.stderr
    assert "secret" not in proc.stderr  # passwords never printed
    assert not (root / ".modelcycle").exists()


def test_broken_config_file_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root), cwd=tmp_path, check=True)
    (root / "modelcycle.toml").write_text("[store\n")
    proc = run_cli("audit", "log", cwd=root)
    assert proc.returncode == 2
    assert "modelcycle.toml" in proc.stderr
    assert "TOML" in proc.stderr


def test_audit_log_filters(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root), cwd=tmp_path, check=True)
    run_cli("audit", "note", "first", "--subject", "model:credit/1", cwd=root, check=True)
    run_cli("audit", "note", "second", cwd=root, check=True)

    def actions(*args: str) -> list[str]:
        proc = run_cli("audit", "log", "--json", *args, cwd=root, check=True)
        return [json.loads(x)["action"] for x in proc.stdout.splitlines()]

    assert actions() == ["workspace.created", "audit.note", "audit.note"]
    assert actions("--subject", "model:credit/1") == ["audit.note"]
    assert actions("--action", "workspace.created") == ["workspace.created"]
    assert actions("--since", "1h") == ["workspace.created", "audit.note", "audit.note"]
    assert actions("--since", "2999-01-01") == []
    assert actions("--limit", "1") == ["audit.note"]
    bad = run_cli("audit", "log", "--since", "yesterday-ish", cwd=root)
    assert bad.returncode == 2
    assert "--since" in bad.stderr
    table = run_cli("audit", "log", cwd=root, check=True)
    assert "3 event(s)" in table.stdout


def test_empty_note_is_refused_and_not_recorded(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root), cwd=tmp_path, check=True)
    proc = run_cli("audit", "note", "   ", cwd=root)
    assert proc.returncode == 2
    assert "text" in proc.stderr
    log = run_cli("audit", "log", "--json", cwd=root, check=True)
    assert len(log.stdout.splitlines()) == 1


def test_artifacts_put_get_list_verify(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    run_cli("init", str(root), cwd=tmp_path, check=True)
    src = root / "model.bin"
    src.write_bytes(b"\x00\x01weights" * 1000)
    put = run_cli("artifacts", "put", str(src), "--label", "weights", cwd=root, check=True)
    sha = put.stdout.split()[0]
    out = tmp_path / "copy.bin"
    run_cli("artifacts", "get", sha, "-o", str(out), cwd=root, check=True)
    assert out.read_bytes() == src.read_bytes()
    listing = run_cli("artifacts", "list", cwd=root, check=True)
    assert sha in listing.stdout
    assert "weights" in listing.stdout
    assert run_cli("artifacts", "verify", cwd=root).returncode == 0

    blob = root / ".modelcycle" / "artifacts" / "objects" / sha[:2] / sha
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    bad = run_cli("artifacts", "verify", cwd=root)
    assert bad.returncode == 1
    assert sha in bad.stderr
    assert "corrupted" in bad.stderr
    get = run_cli("artifacts", "get", sha, "-o", str(tmp_path / "x.bin"), cwd=root)
    assert get.returncode == 5
    assert not (tmp_path / "x.bin").exists()
    events = [
        json.loads(x)
        for x in run_cli("audit", "log", "--json", cwd=root, check=True).stdout.splitlines()
    ]
    assert events[1]["action"] == "artifact.stored"
    assert events[1]["subject"] == f"artifact:{sha}"
    missing = run_cli("artifacts", "put", str(tmp_path / "nope.bin"), cwd=root)
    assert missing.returncode == 3
    bad_sha = run_cli("artifacts", "get", "../../etc/passwd", "-o", "x", cwd=root)
    assert bad_sha.returncode == 2


def test_the_cli_starts_without_loading_a_stage() -> None:
    # Every command pays the CLI's start; a stage imported at the top of a command module
    # (a default value, a helper) made each one ~0.9 s slower. Stages load when a command runs.
    import subprocess
    import sys

    stages = ("datasets", "registry", "pipelines", "scoring", "deploy", "monitoring", "automations")
    code = (
        "import sys, modelcycle.interfaces.cli.main\n"
        "print(sorted(m for m in sys.modules if m.startswith('modelcycle.')"
        f" and m.split('.')[1] in {stages!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
