"""A workspace named by URLs alone (MODELCYCLE_DB_URL + MODELCYCLE_ARTIFACTS_URL), no folder.

Its audit head copy is the ``workspace_info`` row ``audit.head``; truncation is still caught.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from _cli import run_cli
from _s3 import S3Server
from modelcycle import NotFound, Workspace, init_workspace
from modelcycle.settings import load_settings


@pytest.fixture
def stateless_env(
    s3_server: S3Server, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A workspace made with `init` elsewhere, and the variables that name it from anywhere."""
    for name in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL", "MODELCYCLE_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    artifacts = f"s3://{s3_server.new_bucket()}/ws"
    monkeypatch.setenv("MODELCYCLE_ARTIFACTS_URL", artifacts)
    ws, _ = init_workspace(tmp_path / "admin", db_url=db_url)
    ws.close()
    env = {**s3_server.env, "MODELCYCLE_DB_URL": db_url, "MODELCYCLE_ARTIFACTS_URL": artifacts}
    empty = tmp_path / "host2"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setenv("MODELCYCLE_DB_URL", db_url)
    return env


def test_a_process_runs_from_urls_alone_and_keeps_the_head_in_the_database(
    stateless_env: dict[str, str],
) -> None:
    settings = load_settings()
    assert settings.stateless
    with Workspace(settings=settings) as ws:
        ref = ws.store_artifact(__file__)
        for i in range(4):
            ws.audit.note(f"note {i}")
        assert ws.artifacts.get_bytes(ref.sha256) == Path(__file__).read_bytes()
        head = ws.audit.head()
        engine = create_engine(settings.db_url)
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT value FROM workspace_info WHERE key = 'audit.head'")
            ).scalar()
        engine.dispose()
        assert row is not None
        assert f'"seq": {head.seq}' in row
        assert ws.audit.verify().problem is None
    assert list(Path.cwd().iterdir()) == []  # nothing written where it ran


def test_truncation_with_a_rewound_head_row_is_caught_by_the_head_copy(
    stateless_env: dict[str, str],
) -> None:
    with Workspace() as ws:
        for i in range(5):
            ws.audit.note(f"note {i}")
        last = ws.audit.head().seq
        engine = create_engine(ws.settings.db_url)
        with engine.begin() as conn:
            keep = conn.execute(
                text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": last - 2}
            ).one()
            conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": last - 2})
            conn.execute(
                text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": last - 2, "h": keep.hash}
            )
        engine.dispose()
        report = ws.audit.verify()
        assert report.problem is not None
        assert (report.problem.seq, report.problem.kind) == (last - 1, "truncated")
        assert "head row workspace_info['audit.head']" in report.problem.detail
    proc = run_cli("audit", "verify", cwd=Path.cwd(), env=stateless_env)
    assert proc.returncode == 1
    assert "truncated" in proc.stderr


def test_a_database_url_without_an_artifact_url_is_refused(tmp_path: Path) -> None:
    env = {"MODELCYCLE_DB_URL": "postgresql://db.example/x"}
    with pytest.raises(NotFound, match="MODELCYCLE_ARTIFACTS_URL"):
        load_settings(environ=env)


def test_local_deploys_keep_their_files_in_the_cache_and_their_spill_is_ingested(
    stateless_env: dict[str, str],
) -> None:
    """`deploy --target local` from a folder-less process keeps its files in the cache's
    modelcycle-deploy/ (a .modelcycle/ folder would make the cache a workspace folder for the
    next command); `predictions ingest-spill` run there ingests what its servers spilled.
    (The loop in test_scaleout_loop.py deploys this way for real.)"""
    import time

    import numpy as np
    import pyarrow as pa

    from modelcycle.deploy.host_state import deploy_spill_dir
    from modelcycle.scoring import LogRecord, PredictionLog, read_predictions
    from modelcycle.store import MetadataStore

    here = Path.cwd()
    settings = load_settings()
    with Workspace(settings=settings) as ws:
        assert ws.deploy.deployments_dir == here / "modelcycle-deploy" / "deployments"
    spill = deploy_spill_dir(settings)
    assert spill == here / "modelcycle-deploy" / "spill"
    # A deployed server that could not reach the database spilled three rows there.
    down = MetadataStore("postgresql+psycopg://postgres@127.0.0.1:1/down")
    log = PredictionLog(down, spill)
    log.start(ingest_leftovers=False)
    for i in range(3):
        log.submit(
            LogRecord(f"dep-{i}", "tree", 1, pa.table({"x": [float(i)]}), np.array([0.5]),
                      None, None, 1.0, time.time())
        )  # fmt: skip
    log.close()
    down.close()
    assert log.stats.spilled_rows == 3
    done = run_cli("predictions", "ingest-spill", cwd=here, env=stateless_env)
    assert done.returncode == 0, done.stderr
    assert "Ingested 3 row(s) from 1 spill file(s)" in done.stdout
    with Workspace(settings=load_settings()) as ws:
        ids = read_predictions(ws.metadata, "tree").column("request_id").to_pylist()
    assert sorted(ids) == ["dep-0", "dep-1", "dep-2"]
    assert not (here / ".modelcycle").exists()


def test_serve_runs_from_urls_alone(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    for name in ("MODELCYCLE_HOME", "MODELCYCLE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")},
        **s3_server.env,
        "MODELCYCLE_DB_URL": f"sqlite:///{tmp_path / 'meta.db'}",
        "MODELCYCLE_ARTIFACTS_URL": f"s3://{s3_server.new_bucket()}/ws",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ws, _ = init_workspace(tmp_path / "admin")
    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    ws.registry.register(LogisticRegression().fit(x, [0, 0, 1, 1]), "tiny", input_example=x)
    ws.close()
    empty = tmp_path / "host"
    empty.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelcycle", "serve", "tiny/1", "--port", str(port)],
        cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        body = json.dumps({"rows": [{"a": 3.0, "b": 0.0}]}).encode()
        deadline = time.monotonic() + 60
        answer = None
        while answer is None:
            assert time.monotonic() < deadline, "serve did not answer"
            assert proc.poll() is None, proc.communicate()[0]
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/predict", body, {"content-type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=5) as r:
                    answer = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert answer["predictions"] == [1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert list(empty.iterdir()) == []


def test_a_stateless_worker_dates_its_rules_by_the_config_file(
    stateless_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rules file (a ConfigMap) was changed before the trigger: the trigger is acted on,
    # although no worker was running when it was written.
    config = tmp_path / "configmap" / "modelcycle.toml"
    config.parent.mkdir()
    config.write_text(
        '[[rules]]\nname = "echo"\non = "audit.note"\nwhere = { subject = "trigger" }\n'
        'do = "note"\nwith = { text = "seen {seq}", subject = "effect" }\n'
    )
    monkeypatch.setenv("MODELCYCLE_CONFIG", str(config))
    with Workspace() as ws:
        assert ws.settings.config_file == config
        trigger = ws.audit.note("go", subject="trigger")
        job = ws.automations.worker(poll_seconds=0.01).run_once()
        assert job is not None
        assert job.state == "succeeded"
        assert job.idempotency_key == f"echo:{trigger.seq}"
