"""The scoring server of a bundle, with no workspace: ``python serve.py`` in the bundle, or
``python -m modelcycle.deploy.bundle_server BUNDLE_DIR [--port P]``.

It is the server ``modelcycle serve`` runs (:func:`modelcycle.scoring.serve`), fed from the
bundle's files: every file's sha256 is checked against ``bundle.json`` first, then the model
loads with the registry's flavor rules (skops' trusted-type list; pickle only with
``--trust``).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from modelcycle.deploy.bundle import verify_bundle
from modelcycle.entities import ModelVersion
from modelcycle.errors import IntegrityError, ModelcycleError
from modelcycle.registry import LoadedModel, Signature, get_flavor
from modelcycle.scoring import (
    DEFAULT_MAX_BODY_BYTES,
    PredictionLog,
    ScoringEngine,
    Serving,
    serve,
)
from modelcycle.store import MetadataStore

__all__ = ["load_bundle_model", "main"]


def load_bundle_model(bundle_dir: Path | str, *, trust: bool = False) -> LoadedModel:
    """The bundle's model, its bytes checked against the manifest's sha256 before loading."""
    info = verify_bundle(bundle_dir)
    model = info.manifest["model"]
    data = (info.path / model["file"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != model["sha256"]:
        raise IntegrityError(f"bundle: {model['file']} does not match the model's sha256")
    signature = json.loads((info.path / model["signature"]).read_text(encoding="utf-8"))
    version = ModelVersion(
        name=model["name"],
        version=int(model["version"]),
        sha256=model["sha256"],
        flavor=model["flavor"],
        signature=signature,
        metrics=dict(model.get("metrics") or {}),
        params={},
        tags={},
        datasets=list(info.manifest["lineage"]["datasets"]),
        requirements=list(model.get("requirements") or []),
        run_id=info.manifest["lineage"]["run_id"],
        status="active",
        created_at=model["created_at"],
        created_by=model.get("created_by", ""),
    )
    flavor = get_flavor(model["flavor"])
    return LoadedModel(
        version, Signature.from_dict(signature), flavor, flavor.load(data, trust=trust)
    )


def _engine(
    bundle_dir: str,
    *,
    trust: bool,
    max_batch: int,
    max_wait_ms: float,
    max_rows: int,
    threads: int,
    log_db: str | None = None,
    spill_dir: str | None = None,
) -> ScoringEngine | Serving:
    engine = ScoringEngine(
        [functools.partial(load_bundle_model, bundle_dir, trust=trust)],
        max_batch_rows=max_batch,
        max_wait_ms=max_wait_ms,
        max_rows_per_request=max_rows,
        native_threads=threads,
    )
    if log_db is None:
        return engine
    # Logging is optional: a bundle serves on its own, and logs into a workspace's database
    # (prediction log, /feedback) only when told where that is.
    metadata = MetadataStore(log_db)
    spill = Path(spill_dir) if spill_dir else Path(bundle_dir) / "spill"
    return Serving(engine, prediction_log=PredictionLog(metadata, spill), metadata=metadata)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="serve.py", description="Serve a modelcycle bundle's model over HTTP."
    )
    p.add_argument("bundle", help="the bundle folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--max-rows", type=int, default=10_000)
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--trust", action="store_true", help="load models that need trust (pickle)")
    p.add_argument(
        "--log-db",
        default=os.environ.get("MODELCYCLE_BUNDLE_LOG_DB"),
        help="database URL for the prediction log and /feedback "
        "(default: $MODELCYCLE_BUNDLE_LOG_DB; none: no logging)",
    )
    p.add_argument("--spill-dir", help="where log rows wait while that database is down")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        info = verify_bundle(args.bundle)
        factory = functools.partial(
            _engine,
            str(info.path),
            trust=args.trust,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_rows=args.max_rows,
            threads=args.threads,
            log_db=args.log_db,
            spill_dir=args.spill_dir,
        )
        print(
            f"Serving {info.ref} from bundle {info.digest[:12]} on "
            f"http://{args.host}:{args.port} ({args.workers} worker(s))",
            flush=True,
        )
        return serve(
            factory,
            host=args.host,
            port=args.port,
            workers=args.workers,
            max_body_bytes=args.max_body_bytes,
        )
    except ModelcycleError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
