"""Dispatch channel: starts the team's CI deployment pipeline through the provider's own API.

The deployment workflows that ``modelcycle ci init`` writes (interfaces/ci) wait for exactly
these calls, with the model reference under the name each one reads:

- GitHub: ``POST {api}/repos/OWNER/REPO/dispatches``, JSON ``event_type`` (the event name) and
  ``client_payload.model_ref``; ``Authorization: Bearer TOKEN``.
- GitLab: ``POST {api}/api/v4/projects/ID/trigger/pipeline``, form fields ``token`` (a pipeline
  trigger token), ``ref`` and ``variables[MODEL_REF]``.
- Azure: ``POST {api}/ORG/PROJECT/_apis/pipelines/ID/runs?api-version=7.1``, JSON
  ``templateParameters.modelRef`` and the branch; Basic auth with an empty user and the PAT.

The token is read from ``token_env`` at each attempt and goes only into the request: it is never
in the job's parameters, the receipt or a :class:`DeliveryFailed` message (post_json's messages
carry the status or the connection error, never the request).
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse

from modelcycle.automations.channels.base import Channel, DeliveryFailed, Message
from modelcycle.automations.channels.webhook import post_json

__all__ = ["DEFAULT_API", "DispatchChannel", "model_ref"]

DEFAULT_API = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com",
    "azure": "https://dev.azure.com",
}
_DEFAULT_REF = "main"
_UA = "modelcycle-dispatch"


def model_ref(message: Message) -> str | None:
    """``NAME/VERSION`` the event is about: its payload's ``model``, else a ``model:`` subject."""
    value = message.payload.get("model")
    if isinstance(value, str) and "/" in value:
        return value
    if message.subject.startswith("model:"):
        return message.subject[len("model:") :]
    return None


class DispatchChannel(Channel):
    kind = "dispatch"

    def send(self, message: Message) -> str:
        entry = self.entry
        assert entry.dispatch is not None
        assert entry.repository is not None
        assert entry.token_env is not None
        ref = model_ref(message)
        if ref is None:
            # Starting a pipeline without a model would train (GitLab) or deploy the alias's
            # default (Azure): refuse rather than start the wrong thing.
            raise DeliveryFailed(
                f"{message.event} ({message.subject}) is about no model version: a dispatch "
                "entry only sends model events such as model.promoted"
            )
        token = os.environ.get(entry.token_env, "")
        if not token:
            raise DeliveryFailed(f"the environment variable {entry.token_env} is not set")
        api = entry.api_url or DEFAULT_API[entry.dispatch]
        branch = entry.ref or _DEFAULT_REF
        if entry.dispatch == "github":
            url = f"{api}/repos/{entry.repository}/dispatches"
            body = json.dumps(
                {
                    "event_type": message.event,
                    "client_payload": {
                        "model_ref": ref,
                        "event": message.event,
                        "delivery": message.id,
                        "subject": message.subject,
                        "actor": message.actor,
                        "at": message.at,
                    },
                }
            ).encode()
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "Authorization": f"Bearer {token}",
            }
        elif entry.dispatch == "gitlab":
            project = urllib.parse.quote(entry.repository, safe="")
            url = f"{api}/api/v4/projects/{project}/trigger/pipeline"
            body = urllib.parse.urlencode(
                {
                    "token": token,
                    "ref": branch,
                    "variables[MODEL_REF]": ref,
                    "variables[MODELCYCLE_EVENT]": message.event,
                    "variables[MODELCYCLE_DELIVERY]": message.id,
                }
            ).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            org, project, pipeline = entry.repository.split("/")
            path = "/".join(urllib.parse.quote(p, safe="") for p in (org, project))
            url = f"{api}/{path}/_apis/pipelines/{pipeline}/runs?api-version=7.1"
            ref_name = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
            # Azure refuses unknown template parameters: only the one the pipeline declares.
            body = json.dumps(
                {
                    "resources": {"repositories": {"self": {"refName": ref_name}}},
                    "templateParameters": {"modelRef": ref},
                }
            ).encode()
            basic = base64.b64encode(f":{token}".encode()).decode()
            headers = {"Content-Type": "application/json", "Authorization": f"Basic {basic}"}
        headers["User-Agent"] = _UA
        return post_json(url, body, headers, self.timeout)
