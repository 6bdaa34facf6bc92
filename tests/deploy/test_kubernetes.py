"""The kubernetes target: manifests written and, when kubectl is on the PATH, applied.

No cluster runs on these machines. Without kubectl the command prints what to run; the
applied path is driven by a stand-in `kubectl` script (it records its argv and checks that
every file it is given parses as YAML of the expected kind), which is all that this target
asks of kubectl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from _cli import run_cli
from modelcycle import Workspace

_FAKE_KUBECTL = """\
#!{python}
import json, sys, yaml
args = sys.argv[1:]
files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
kinds = [yaml.safe_load(open(f))["kind"] for f in files]
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"args": args, "kinds": kinds}}) + "\\n")
for kind in kinds:
    print(f"{{kind.lower()}}/credit-v1 created")
"""


def test_without_kubectl_prints_the_command(dws: Workspace, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run_cli(
        "deploy",
        "credit/1",
        "--target",
        "kubernetes",
        "--endpoint",
        "k8s-print",
        cwd=dws.root,
        env={"PATH": str(empty)},
    )
    assert done.returncode == 0, done.stderr
    assert "kubectl is not on the PATH" in done.stdout
    assert "kubectl apply -f " in done.stdout
    shown = json.loads(run_cli("deployments", "show", "k8s-print", "--json", cwd=dws.root).stdout)
    assert shown["status"] == "written"
    text = run_cli("deployments", "show", "k8s-print", cwd=dws.root).stdout
    assert "kubectl    kubectl apply -f " in text
    assert "image      localhost/modelcycle/credit:v1" in text
    folder = Path(shown["details"]["bundle"]) / "kubernetes"
    docs = {p.name: yaml.safe_load(p.read_text()) for p in folder.glob("*.yaml")}
    assert docs["deployment.yaml"]["kind"] == "Deployment"
    probe = docs["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert probe["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_with_kubectl_applies_and_records(dws: Workspace, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "kubectl.log"
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(_FAKE_KUBECTL.format(python=sys.executable, log=str(log)))
    kubectl.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = run_cli(
        "deploy",
        "credit/1",
        "--target",
        "kubernetes",
        "--endpoint",
        "k8s",
        "--namespace",
        "scoring",
        cwd=dws.root,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "deployment/credit-v1 created" in done.stdout
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 1
    assert calls[0]["args"][:3] == ["apply", "--namespace", "scoring"]
    assert calls[0]["kinds"] == ["Deployment", "Service"]
    shown = json.loads(run_cli("deployments", "show", "k8s", "--json", cwd=dws.root).stdout)
    assert shown["status"] == "active"
    assert shown["target"] == "kubernetes"
    # `models show` says where the version is deployed.
    lineage = json.loads(run_cli("models", "show", "credit/1", "--json", cwd=dws.root).stdout)
    assert {"endpoint": "k8s", "target": "kubernetes"}.items() <= lineage["deployments"][0].items()

    # --kserve applies the ServingRuntime and the InferenceService instead.
    again = run_cli(
        "deploy",
        "credit/2",
        "--target",
        "kubernetes",
        "--endpoint",
        "k8s",
        "--kserve",
        cwd=dws.root,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[-1]["kinds"] == ["ServingRuntime", "InferenceService"]
    history = json.loads(run_cli("deployments", "show", "k8s", "--json", cwd=dws.root).stdout)
    assert history["model"] == "credit/2"
    assert history["details"]["previous_model"] == "credit/1"
