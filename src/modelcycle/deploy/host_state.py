"""Where a deploying process keeps the local target's files on its own host.

The local target runs each version's server and the endpoint's router as processes on this
host; their files are the attempt's bundle (built from the model in the artifact store), the
server's log and pid file, the router's ``router.json`` and pid file, and the rows a server
spilled while the prediction log's database was down.

In a workspace folder they live in its state folder (``.modelcycle/``), as always. A stateless
process (``MODELCYCLE_DB_URL`` and an artifacts URL, no folder: a worker or a CI job deploying
from any host) keeps them in its cache under ``modelcycle-deploy/``, never in a
``.modelcycle/`` folder: that would turn the cache into a workspace folder for the next command
run there, with its own audit head file beside a chain that lives in the database. Nothing in
it is the only copy of anything: the bundle is rebuilt from the store, and the deployment rows
say what runs where. The pid and router files are how ``deployments stop`` finds this host's
processes, so delete the folder only when nothing deployed from it still runs.
"""

from __future__ import annotations

from pathlib import Path

from modelcycle.settings import Settings

__all__ = ["deploy_spill_dir", "deploy_state_dir"]


def deploy_state_dir(settings: Settings) -> Path:
    """The folder holding ``deployments/`` (and the local servers' ``spill/``) for this process."""
    return settings.local_dir("deploy") if settings.stateless else settings.state_dir


def deploy_spill_dir(settings: Settings) -> Path:
    """Where locally deployed servers spill prediction log rows (``predictions ingest-spill``
    reads it)."""
    return deploy_state_dir(settings) / "spill"
