"""Signed audit exports: a detached DSSE envelope beside the export, ``FILE.dsse.json``.

The envelope signs an in-toto Statement whose subject is the export file's sha256 and whose
predicate records the workspace (its root and the hash of its first event, which no other
workspace shares), the head sequence and hash, the number of events, when it was signed and by
whom (actor, key name, key fingerprint). Verification checks, in order: the signature with the
given public key, that the file is byte for byte the one signed (a changed byte or a truncated
file changes its sha256), then the chain itself, then that the signed head is the chain's head.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from modelcycle.audit.chain import utc_timestamp
from modelcycle.audit.dsse import EnvelopeError, open_envelope, sign_statement, statement
from modelcycle.audit.export import read_export
from modelcycle.audit.keys import SigningKey
from modelcycle.audit.verify import VerifyReport, verify_chain
from modelcycle.errors import InvalidInput, NotFound

__all__ = [
    "EXPORT_PREDICATE",
    "SignedExportReport",
    "export_signature_path",
    "sign_export",
    "verify_script",
    "verify_signed_export",
    "write_verify_script",
]

EXPORT_PREDICATE = "https://modelcycle.dev/audit-export/v1"
_SUFFIX = ".dsse.json"
# The stand-alone checker a third party runs (only `cryptography`): a module of this package so
# an installed wheel carries it, written out by `modelcycle audit verify-script`.
VERIFY_SCRIPT = "verify_script.py"


def verify_script() -> bytes:
    """The stand-alone verification script's text (``python3 SCRIPT EXPORT KEY.pub``)."""
    from importlib import resources

    return resources.files("modelcycle.audit").joinpath(VERIFY_SCRIPT).read_bytes()


def write_verify_script(out: Path | str) -> tuple[Path, str]:
    """Write the stand-alone verification script to ``out`` (mode 0755); return the path and
    the script's sha256, which a reader can compare with the one the docs print."""
    data = verify_script()
    target = Path(out).expanduser()
    if target.is_dir():
        raise InvalidInput(f"{target} is a folder; give a file name", field="out")
    if not target.parent.is_dir():
        raise NotFound(f"no folder {target.parent} to write {target.name} into")
    target.write_bytes(data)
    target.chmod(0o755)
    return target, hashlib.sha256(data).hexdigest()


def export_signature_path(export: Path | str) -> Path:
    """Where the detached signature of ``export`` goes: ``export`` + ``.dsse.json``."""
    return Path(f"{export}{_SUFFIX}")


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sign_export(
    export: Path | str, key: SigningKey, *, actor: str, root: str, out: Path | str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Sign the export at ``export``; write the envelope (default ``FILE.dsse.json``).

    The export is read back first: a file that is not a complete export is not signed.
    Returns the envelope's path and the signed Statement.
    """
    path = Path(export)
    if not path.is_file():
        raise NotFound(f"no export file {path}")
    events, anchors = read_export(path)
    head = anchors[-1].head
    predicate = {
        "format": "modelcycle-audit-export/1",
        "workspace": {"root": root, "genesis": events[0].hash if events else None},
        "head": {"seq": head.seq, "hash": head.hash},
        "events": len(events),
        "signed_at": utc_timestamp(),
        "signer": {"actor": actor, "key": key.name, "fingerprint": key.fingerprint},
    }
    body = statement([(path.name, _sha256_file(path))], EXPORT_PREDICATE, predicate)
    envelope = sign_statement(body, key)
    target = Path(out) if out is not None else export_signature_path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(envelope, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target, body


@dataclass(frozen=True, slots=True)
class SignedExportReport:
    """The outcome: ``reason`` is None when everything verifies, else the first failure."""

    reason: str | None
    chain: VerifyReport | None = None
    predicate: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is None


def verify_signed_export(
    export: Path | str,
    public_key: ec.EllipticCurvePublicKey,
    *,
    signature: Path | str | None = None,
) -> SignedExportReport:
    """Check the signature of ``export``, then its bytes, then its chain (see module doc)."""
    path = Path(export)
    sig_path = Path(signature) if signature is not None else export_signature_path(path)
    if not path.is_file():
        raise NotFound(f"no export file {path}")
    if not sig_path.is_file():
        return SignedExportReport(f"no signature file {sig_path}: the export is not signed")
    try:
        envelope = json.loads(sig_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return SignedExportReport(f"{sig_path} is not JSON: not a DSSE envelope")
    try:
        body = open_envelope(envelope, public_key, EXPORT_PREDICATE)
    except EnvelopeError as exc:
        return SignedExportReport(str(exc))
    raw = body.get("predicate")
    predicate: dict[str, Any] = raw if isinstance(raw, dict) else {}
    subjects = body.get("subject") or []
    signed = subjects[0].get("digest", {}).get("sha256") if subjects else None
    actual = _sha256_file(path)
    if actual != signed:
        return SignedExportReport(
            f"the export's sha256 {actual} differs from the signed {signed}: it was changed "
            "or truncated after signing",
            predicate=predicate,
        )
    try:
        events, anchors = read_export(path)
    except InvalidInput as exc:
        return SignedExportReport(f"the signed export is not readable ({exc})", predicate=predicate)
    chain = verify_chain(events, anchors)
    if not chain.ok:
        return SignedExportReport(
            f"the signed chain does not verify: {chain.problem}", chain, predicate
        )
    head = predicate.get("head") or {}
    if head != {"seq": chain.head.seq, "hash": chain.head.hash}:
        return SignedExportReport(
            f"the signed head {head} is not the chain's head {chain.head.seq} {chain.head.hash}",
            chain,
            predicate,
        )
    genesis = (predicate.get("workspace") or {}).get("genesis")
    if genesis != (events[0].hash if events else None):
        return SignedExportReport(
            "the signed workspace's first event differs from the export's", chain, predicate
        )
    return SignedExportReport(None, chain, predicate)
