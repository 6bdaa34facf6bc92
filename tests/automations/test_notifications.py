"""Notifications end to end: audit event -> delivery job -> a real receiver on 127.0.0.1."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from _receivers import Receiver, free_port, smtp_server, webhook_receiver
from sqlalchemy import text

from _cli import run_cli
from modelcycle import Workspace, init_workspace
from modelcycle.errors import IntegrityError, InvalidInput

SECRET = "s3cret-for-tests"
FAST = """
[notifications]
retry_base_seconds = 0.05
retry_max_seconds = 0.2
timeout_seconds = 0.5
base_url = "http://console.example"
"""


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_TEST_HOOK_SECRET", SECRET)


def _configure(ws: Workspace, body: str) -> Workspace:
    path = ws.root / "modelcycle.toml"
    path.write_text(path.read_text() + textwrap.dedent(body))
    ws.close()
    return Workspace(ws.root)


def _webhook(url: str, events: str = '["audit.note"]', name: str = "hook") -> str:
    return f"""
    [[notify]]
    name = "{name}"
    events = {events}
    webhook = "{url}"
    secret_env = "MC_TEST_HOOK_SECRET"
    """


def _drain(ws: Workspace, *, seconds: float = 10.0) -> None:
    """Run a worker until no delivery is queued or running (retries included)."""
    worker = ws.automations.worker(poll_seconds=0.01)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if worker.run_once() is None:
            log = ws.automations.notifications.log()
            if not [j for j in log if j.state in ("queued", "running")]:
                return
            time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def test_a_receiver_failing_twice_gets_three_attempts_of_one_delivery(
    workspace: Workspace,
) -> None:
    with webhook_receiver(SECRET, plan=["500", "500"]) as hook:
        ws = _configure(workspace, FAST + _webhook(hook.url))
        noted = ws.audit.note("the loop is closed")  # returns before any delivery is tried
        _drain(ws)
        ids = {s.headers["X-Modelcycle-Delivery"] for s in hook.seen}
        (job,) = ws.automations.notifications.log()
        ws.close()
    assert [s.answer for s in hook.seen] == ["500", "500", "ok"]
    assert all(s.signature_ok for s in hook.seen)
    assert len(ids) == 1
    assert hook.accepted == list(ids)
    assert (job.state, job.attempts) == ("succeeded", 3)
    body = hook.seen[-1].json
    assert sorted(body) == ["actor", "at", "event", "id", "links", "payload", "subject"]
    assert (body["event"], body["id"], body["payload"]["audit_seq"]) == (
        "audit.note", ids.pop(), noted.seq,
    )  # fmt: skip
    assert body["links"]["audit_event"] == f"http://console.example/audit/events/{noted.seq}"
    assert hook.seen[-1].headers["X-Modelcycle-Event"] == "audit.note"
    assert hook.seen[-1].headers["Content-Type"] == "application/json"


def test_a_receiver_that_hangs_or_hangs_up_is_retried(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    with webhook_receiver(SECRET, plan=["hang", "close"]) as hook:
        hook.hang_seconds = 1.5  # past the 0.5 s timeout
        ws = _configure(ws, FAST + _webhook(hook.url))
        ws.audit.note("hello")
        _drain(ws)
        (job,) = ws.automations.notifications.log()
        ws.close()
    assert [s.answer for s in hook.seen] == ["hang", "close", "ok"]
    assert (job.state, job.attempts) == ("succeeded", 3)
    assert len({s.headers["X-Modelcycle-Delivery"] for s in hook.seen}) == 1


def test_a_delivery_that_never_lands_is_dead_after_its_window(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    with webhook_receiver(SECRET, plan=["500"] * 100) as hook:
        ws = _configure(
            ws, FAST.replace("[notifications]", '[notifications]\ngive_up_after = "1s"')
            + _webhook(hook.url, events='["audit.note", "job.dead"]'),
        )  # fmt: skip
        ws.audit.note("nobody listens")
        _drain(ws)
        attempts = len(hook.seen)
        _drain(ws)  # the dead delivery's job.failed event does not notify anyone
        ws.close()
    dead = run_cli("jobs", "list", "--state", "dead", "--json", cwd=ws.root, check=True)
    log = run_cli("notify", "log", "--json", cwd=ws.root, check=True)
    (row,) = [json.loads(line) for line in log.stdout.splitlines()]
    assert [json.loads(line)["id"] for line in dead.stdout.splitlines()] == [row["job"]]
    assert (row["state"], row["event"], row["attempts"]) == ("dead", "audit.note", attempts)
    assert attempts >= 3
    assert "HTTP 500" in row["error"]
    assert len(hook.seen) == attempts


def test_email_slack_and_model_filters(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    with smtp_server() as box, webhook_receiver(SECRET) as slack:
        ws = _configure(
            ws,
            FAST
            + f"""
            [smtp]
            host = "127.0.0.1"
            port = {box.port}
            starttls = false
            from = "modelcycle@example.com"

            [[notify]]
            name = "mail"
            events = ["audit.*"]
            email = ["oncall@example.com"]

            [[notify]]
            name = "chat"
            events = ["audit.note"]
            slack = "{slack.url}"

            [[notify]]
            name = "credit-only"
            events = ["audit.note"]
            models = ["credit"]
            slack = "{slack.url}"
            """,
        )
        ws.audit.note("drift is coming")
        _drain(ws)
        log = {j.params["notifier"]: j.state for j in ws.automations.notifications.log()}
        ws.close()
    assert log == {"mail": "succeeded", "chat": "succeeded"}  # not about model credit
    (mail,) = box.messages
    assert mail["Subject"] == "[modelcycle] audit.note: workspace"
    assert mail["To"] == "oncall@example.com"
    (post,) = slack.seen
    assert post.json["text"].startswith("*audit.note* `workspace` by ")
    assert "<http://console.example/audit/events/" in post.json["text"]


def test_scheduled_verification_of_a_tampered_chain_raises_the_alarm(
    workspace: Workspace,
) -> None:
    with webhook_receiver(SECRET) as hook:
        ws = _configure(
            workspace,
            FAST + '[audit]\nverify_every = "1h"\n'
            + _webhook(hook.url, events='["audit.verify_failed"]'),
        )  # fmt: skip
        worker = ws.automations.worker(poll_seconds=0.01)
        job = worker.run_once()
        assert job is not None
        assert (job.kind, job.state, job.result) == (
            "audit_verify", "succeeded", {"ok": True, "events": job.result["events"]},
        )  # fmt: skip
        with ws.metadata.unaudited() as conn:
            conn.execute(text("UPDATE audit_events SET payload = :p WHERE seq = 2"), {"p": "{}"})
        ws.automations.queue.enqueue("audit_verify", {})  # as the next slot would
        with pytest.raises(IntegrityError, match="broken at event 2"):
            worker.run_once()  # the alarm goes out, then the refused write stops the worker
        (alarm,) = ws.automations.notifications.log()
        ws.close()
    (seen,) = hook.seen
    assert seen.signature_ok
    assert seen.headers["X-Modelcycle-Event"] == "audit.verify_failed"
    assert seen.json["payload"]["first_bad_seq"] == 2
    assert seen.json["payload"]["kind"] == "altered"
    assert (alarm.state, alarm.attempts) == ("succeeded", 1)


def test_bad_notify_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    ws.close()
    config = ws.root / "modelcycle.toml"
    original = config.read_text()
    cases = {
        'webhook = "ftp://example.com/x"\nsecret_env = "MC_TEST_HOOK_SECRET"': (
            "notify[0].webhook: expected an http:// or https:// URL"
        ),
    }
    for body, message in cases.items():
        config.write_text(original + f'\n[[notify]]\nname = "x"\nevents = ["job.dead"]\n{body}\n')
        proc = run_cli("rules", "check", cwd=ws.root, env={"MC_TEST_HOOK_SECRET": SECRET})
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    config.write_text(
        original + '\n[[notify]]\nname = "x"\nevents = ["job.dead"]\n'
        'webhook = "https://example.com/x"\nsecret_env = "MC_NOT_SET"\n'
    )
    with pytest.raises(InvalidInput, match=r"notify\[0\]\.secret_env: expected the environment "
                       "variable MC_NOT_SET to be set"):  # fmt: skip
        Workspace(ws.root).automations  # noqa: B018 (building it reads the config)


def test_notify_test_sends_a_sample_and_fails_loudly(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    env = {"MC_TEST_HOOK_SECRET": SECRET}
    with webhook_receiver(SECRET) as hook:
        _configure(ws, _webhook(hook.url, name="up") + _webhook(
            f"http://127.0.0.1:{free_port()}/hook", name="down"))  # fmt: skip
        sent = run_cli("notify", "test", "up", cwd=ws.root, env=env)
        refused = run_cli("notify", "test", "down", cwd=ws.root, env=env)
    assert sent.returncode == 0, sent.stderr
    assert "HTTP 200" in sent.stdout
    (seen,) = hook.seen
    assert seen.signature_ok
    assert seen.json["event"] == "notify.test"
    assert refused.returncode == 6
    assert "cannot reach the receiver" in refused.stderr


def test_one_webhook_delivery_as_the_receiver_saw_it(tmp_path: Path) -> None:
    """Prints one delivery (headers and body) for the docs and the closing note."""
    ws, _ = init_workspace(tmp_path / "ws")
    with webhook_receiver(SECRET) as hook:
        ws = _configure(ws, FAST + _webhook(hook.url))
        ws.audit.note("a delivery for the record")
        _drain(ws)
        ws.close()
    (seen,) = hook.seen
    print(json.dumps({"headers": seen.headers, "body": seen.json}, indent=2))
    assert seen.signature_ok
    assert isinstance(Receiver, type)


def test_backoff_doubles_with_jitter_up_to_the_cap_and_gives_up_after_the_window() -> None:
    from datetime import UTC, datetime, timedelta

    from modelcycle.audit import utc_timestamp
    from modelcycle.automations.notifications import delivery_policy
    from modelcycle.automations.notify_config import NotificationSettings
    from modelcycle.entities import Job

    settings = NotificationSettings(retry_base_seconds=10, retry_max_seconds=60)
    policy = delivery_policy(settings)

    def job(attempts: int, age_hours: float) -> Job:
        created = utc_timestamp(datetime.now(UTC) - timedelta(hours=age_hours))
        return Job("j", "notify", None, None, "k", "running", attempts, 99, {}, None, None, "",
                   None, None, created, created, created)  # fmt: skip

    for attempts, full in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60)):
        delays = [policy(job(attempts, 0)) for _ in range(50)]
        assert all(d is not None and full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert policy(job(3, 23.999)) is None  # the next attempt (20-40 s) would land after 24 h


def test_promotion_events_reach_only_the_entry_filtered_to_their_model(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    with webhook_receiver(SECRET) as hook:
        ws = _configure(
            ws,
            FAST + _webhook(hook.url, events='["promotion.*", "model.promoted"]')
            + '    models = ["credit"]\n'
            + _webhook(hook.url, events='["promotion.*"]', name="other")
            + '    models = ["fraud"]\n',
        )  # fmt: skip
        # The events as the approvals and the registry write them (training a model here
        # would cost seconds and test nothing more of notifications).
        for action, payload in (
            ("promotion.requested", {"request": "r1", "model": "credit/1", "alias": "champion"}),
            ("promotion.approved", {"request": "r1", "model": "credit/1", "complete": True}),
            ("model.promoted", {"alias": "champion"}),
            ("model.version_registered", {}),
        ):
            with ws.metadata.write(
                actor="alice", action=action, subject="model:credit/1", payload=payload
            ):
                pass
        _drain(ws)
        ws.close()
    events = [s.headers["X-Modelcycle-Event"] for s in hook.seen]
    assert sorted(events) == ["model.promoted", "promotion.approved", "promotion.requested"]
    assert {s.json["subject"] for s in hook.seen} == {"model:credit/1"}
    assert {s.json["links"]["model"] for s in hook.seen} == {"http://console.example/models/credit"}


def test_a_dead_job_is_announced_as_job_dead(tmp_path: Path) -> None:
    ws, _ = init_workspace(tmp_path / "ws")
    with webhook_receiver(SECRET) as hook:
        ws = _configure(ws, FAST + _webhook(hook.url, events='["job.*"]'))
        failing, _ = ws.automations.queue.enqueue("fail", {"message": "boom"}, max_attempts=1)
        _drain(ws)
        ws.close()
    (seen,) = hook.seen
    assert seen.headers["X-Modelcycle-Event"] == "job.dead"
    assert seen.json["subject"] == f"job:{failing.id}"
    assert seen.json["payload"]["error"] == "RuntimeError: boom"
