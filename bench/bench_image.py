"""Container target figures: image size, build time, time to ready, against floors measured here.

    .venv/bin/python bench/bench_image.py

One workspace with the demo's kind of model (HistGradientBoosting, 100 trees, on the credit
table). It deploys the same version to the local target (the floor for start-up: a plain
process of the same bundle) and to the container target with podman, twice: a cold build
(the image's layers not cached; the base image made first if it is missing) and a warm one.
Sizes: the image against the 500 MB target and against its floor, the base image plus the
installed packages (what any image of this server must hold).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import build_workspace

TARGET_MB = 500.0


def _podman(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, check=True, timeout=600
    ).stdout


def main() -> int:
    if shutil.which("podman") is None:
        print("podman is not installed: run scripts/container-tools.sh first")
        return 1
    from modelcycle import Workspace

    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        root, _, _ = build_workspace(Path(tmp))
        env = dict(os.environ)
        env.setdefault("CONTAINERS_CONF", str(root / ".modelcycle/cache/containers.conf"))
        rows: list[tuple[str, float, str]] = []
        with Workspace(root) as ws:
            started = time.perf_counter()
            ws.deploy.deploy("credit/1", endpoint="bench-local", target="local")
            local_s = time.perf_counter() - started
            ws.deploy.stop("bench-local")
            rows.append(("local target: bundle + start + ready + smoke", local_s, "floor"))

            image = "localhost/modelcycle/credit:v1"
            subprocess.run(["podman", "rmi", "--force", image], env=env, capture_output=True)
            for label in ("cold", "warm"):
                # Cold: podman builds with no layer cache (the base image stays).
                os.environ["BUILDAH_LAYERS"] = "false" if label == "cold" else "true"
                started = time.perf_counter()
                dep = ws.deploy.deploy("credit/1", endpoint=f"bench-{label}", target="container")
                total = time.perf_counter() - started
                extra = dep.instance.extra if dep.instance is not None else {}
                ws.deploy.stop(f"bench-{label}")
                build = float(extra.get("build_seconds") or 0.0)
                base = extra.get("base_image_seconds")
                note = f"{total / local_s:.2f}x floor; image build {build:.1f} s"
                if base:
                    note += f"; base image made in {base:.1f} s"
                rows.append((f"container target, {label} build: whole deploy", total, note))
                rows.append(
                    (f"container target, {label}: all but the image build", total - build, "")
                )
            size = int(extra["image_size_bytes"]) / 1e6
            base_size = (
                int(
                    json.loads(_podman("image", "inspect", extra["base_image"], env=env))[0]["Size"]
                )
                / 1e6
            )
            venv_du = _podman(
                "run", "--rm", "--network=none", image, "du", "-sm", "/opt/venv", env=env
            ).split()[0]
            floor_mb = base_size + float(venv_du)
        print(f"{'what':<52} {'seconds':>8}  note")
        for what, seconds, note in rows:
            print(f"{what:<52} {seconds:8.1f}  {note}")
        print()
        ratio = size / TARGET_MB
        print(f"image size      {size:7.0f} MB  ({ratio:.2f}x the {TARGET_MB:.0f} MB target)")
        print(
            f"floor           {floor_mb:7.0f} MB  (base {base_size:.0f} MB + packages "
            f"{venv_du} MB); image {size / floor_mb:.2f}x the floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
