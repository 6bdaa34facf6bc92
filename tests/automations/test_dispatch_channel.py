"""The ``dispatch`` channel against a real HTTP server standing in for each CI provider's API:
the path, method, auth header and body the generated deployment workflows (interfaces/ci) read."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelcycle.automations.channels import CHANNELS, DeliveryFailed, Message, make_channel
from modelcycle.automations.notify_config import NotificationConfig, load_notification_config
from modelcycle.errors import InvalidInput
from modelcycle.interfaces.ci import azure, github, gitlab

TOKEN = "tok-s3cret-value"


@dataclass
class Api:
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 204
    url: str = ""


@contextmanager
def provider_api(status: int = 204) -> Iterator[Api]:
    api = Api(status=status)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            api.requests.append(("POST", self.path, dict(self.headers), body))
            self.send_response(api.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_DISPATCH_TOKEN", TOKEN)


def _config(**entry: Any) -> NotificationConfig:
    base = {"name": "deploy", "events": ["model.promoted"], "token_env": "MC_DISPATCH_TOKEN"}
    return load_notification_config({"notify": [{**base, **entry}]})


PROMOTED = Message(
    id="e" * 32, event="model.promoted", subject="model:credit/7", at="2026-12-01T00:00:00.000000Z",
    actor="ci:github:octocat", payload={"alias": "champion", "from": 6, "to": 7},
)  # fmt: skip


def _send(config: NotificationConfig, message: Message = PROMOTED) -> str:
    return make_channel(config.entries[0], config).send(message)


def test_github_repository_dispatch() -> None:
    with provider_api() as api:
        receipt = _send(_config(dispatch="github", repository="acme/credit-model", api_url=api.url))
    assert receipt == "HTTP 204"
    [(method, path, headers, body)] = api.requests
    assert (method, path) == ("POST", "/repos/acme/credit-model/dispatches")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    sent = json.loads(body)
    assert sent["event_type"] == "model.promoted"
    assert sent["client_payload"]["model_ref"] == "credit/7"
    assert len(sent["client_payload"]) <= 10  # GitHub's limit on top-level client_payload keys
    # The generated workflow listens for this type and reads this key.
    text = "\n".join(github.FILES.values())
    assert "types: [model.promoted]" in text
    assert "github.event.client_payload.model_ref" in text


def test_gitlab_pipeline_trigger() -> None:
    with provider_api(201) as api:
        receipt = _send(
            _config(dispatch="gitlab", repository="acme/ml/credit", ref="release", api_url=api.url)
        )
    assert receipt == "HTTP 201"
    [(method, path, headers, body)] = api.requests
    assert (method, path) == ("POST", "/api/v4/projects/acme%2Fml%2Fcredit/trigger/pipeline")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in headers  # the trigger token is a form field
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert form["token"] == TOKEN
    assert form["ref"] == "release"
    assert form["variables[MODEL_REF]"] == "credit/7"
    assert "$MODEL_REF" in "\n".join(gitlab.FILES.values())


def test_azure_pipeline_run() -> None:
    with provider_api(200) as api:
        receipt = _send(
            _config(dispatch="azure", repository="acme/Credit Model/42", api_url=api.url)
        )
    assert receipt == "HTTP 200"
    [(method, path, headers, body)] = api.requests
    assert (method, path) == (
        "POST",
        "/acme/Credit%20Model/_apis/pipelines/42/runs?api-version=7.1",
    )
    assert headers["Authorization"] == "Basic " + base64.b64encode(f":{TOKEN}".encode()).decode()
    sent = json.loads(body)
    assert sent == {
        "resources": {"repositories": {"self": {"refName": "refs/heads/main"}}},
        "templateParameters": {"modelRef": "credit/7"},
    }
    assert "parameters.modelRef" in "\n".join(azure.FILES.values())


def test_refusals_never_show_the_token() -> None:
    with provider_api(401) as api:
        config = _config(dispatch="github", repository="acme/credit", api_url=api.url)
        with pytest.raises(DeliveryFailed) as refused:
            _send(config)
        # An event about no model version is not sent at all (it would start the wrong run).
        with pytest.raises(DeliveryFailed, match="no model version"):
            _send(config, Message("f" * 32, "notify.test", "workspace", PROMOTED.at, "me"))
    assert "HTTP 401" in str(refused.value)
    assert TOKEN not in str(refused.value)
    assert TOKEN not in repr(config)
    assert len(api.requests) == 1
    assert "dispatch" in CHANNELS


@pytest.mark.parametrize(
    ("entry", "key", "expected"),
    [
        ({"dispatch": "bitbucket", "repository": "a/b"}, "dispatch", "one of github, gitlab"),
        ({"dispatch": "github"}, "repository", "OWNER/REPO"),
        ({"dispatch": "github", "repository": "acme"}, "repository", "OWNER/REPO for github"),
        ({"dispatch": "azure", "repository": "acme/proj"}, "repository", "ORG/PROJECT/PIPELINE_ID"),
        ({"dispatch": "gitlab", "repository": "1", "token_env": "MC_UNSET_X"}, "token_env",
         "MC_UNSET_X to be set"),
        ({"dispatch": "gitlab", "repository": "1", "token_env": None}, "token_env",
         "the environment variable holding"),
        ({"dispatch": "gitlab", "repository": "1", "api_url": "ftp://x"}, "api_url", "http://"),
        ({"dispatch": "github", "repository": "a/b", "ref": "main"}, "ref", "no ref with github"),
        ({"slack": "http://x.example", "repository": "a/b", "token_env": None}, "repository",
         "only with dispatch"),
        ({"webhook": "http://x.example", "dispatch": "github", "repository": "a/b",
          "secret_env": "MC_DISPATCH_TOKEN"}, "", "exactly one channel key"),
    ],
)  # fmt: skip
def test_bad_dispatch_config(entry: dict[str, Any], key: str, expected: str) -> None:
    raw = {"name": "deploy", "events": ["model.promoted"], "token_env": "MC_DISPATCH_TOKEN"}
    raw = {k: v for k, v in {**raw, **entry}.items() if v is not None}
    with pytest.raises(InvalidInput) as bad:
        load_notification_config({"notify": [{"name": "ok", "events": ["run.*"], "slack":
                                              "http://s.example"}, raw]})  # fmt: skip
    text = str(bad.value)
    assert text.startswith(f"modelcycle.toml notify[1]{'.' + key if key else ''}: expected "), text
    assert expected in text
    assert "\n" not in text
    assert TOKEN not in text
