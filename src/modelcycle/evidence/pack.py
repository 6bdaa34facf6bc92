"""Evidence packs: one zip with everything a reviewer needs about one model, checkable offline.

Members::

    README.md                      what is inside and how to verify each part
    MANIFEST.json                  the sha256 of every other member
    MANIFEST.json.dsse.json        DSSE envelope over an in-toto Statement: one subject per member
    audit/audit.jsonl (+ .dsse.json)   the whole chain, signed (see docs/audit.md)
    audit/index.json               the events about the model in the window (seq, at, action)
    cards/NAME-V.md, .json         the card of each version that held an alias in the window
    drift/checks.json              drift checks of the model in the window
    promotions.json                promotion gates and approval records in the window
    bundles/DIGEST/bundle.json (+ bundle.sig)  the deployed bundles' manifests (and signatures)
    verify_audit_export.py         the stand-alone checker of the export (only `cryptography`)

:func:`verify_pack` reads the zip without extracting it (a ``../x`` member or a symlink is
refused), checks the manifest's signature and every member's sha256, then the signed export
and its chain, and names the first bad part.
"""

from __future__ import annotations

import hashlib
import json
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec

from modelcycle.audit.chain import parse_since, utc_timestamp
from modelcycle.audit.dsse import EnvelopeError, open_envelope, sign_statement, statement
from modelcycle.audit.signed_export import verify_script, verify_signed_export
from modelcycle.errors import InvalidInput, NotFound
from modelcycle.evidence.card import build_card, card_markdown

if TYPE_CHECKING:
    from modelcycle.workspace import Workspace

__all__ = ["PACK_PREDICATE", "build_pack", "verify_pack"]

PACK_PREDICATE = "https://modelcycle.dev/evidence-pack/v1"
_MANIFEST = "MANIFEST.json"
_ENVELOPE = "MANIFEST.json.dsse.json"
_EXPORT = "audit/audit.jsonl"
_EXPORT_SIG = "audit/audit.jsonl.dsse.json"
_SCRIPT = "verify_audit_export.py"

_README = """\
# Evidence pack: {model}

Made {at} by {actor} from the workspace at {root}, for events since {since}.
Audit chain head at packing: event {head_seq} ({head_hash}).

## Contents
- `audit/audit.jsonl`: the whole audit chain; `audit/audit.jsonl.dsse.json` its signature.
- `audit/index.json`: the {n_events} event(s) about {model} in the window.
- `cards/`: model cards of {cards}.
- `drift/checks.json`: {n_drift} drift check(s); `promotions.json`: {n_gates} promotion
  record(s) and approvals.
- `bundles/`: the manifests of {n_bundles} deployed bundle(s), with `bundle.sig` when signed.
- `verify_audit_export.py`: checks the audit export with only Python 3 and `cryptography`.
- `MANIFEST.json`: the sha256 of every member; `MANIFEST.json.dsse.json` signs it.

## Verifying
All of it, offline, with modelcycle:

    modelcycle audit verify --pack evidence.zip --public-key KEY.pub

Without modelcycle (Python 3 with the `cryptography` package):
1. `MANIFEST.json.dsse.json` is a DSSE envelope (payloadType application/vnd.in-toto+json,
   ECDSA P-256/SHA-256) over an in-toto Statement whose subjects are every member with its
   sha256; check its signature with KEY.pub, then each member's sha256.
2. `python3 verify_audit_export.py audit/audit.jsonl KEY.pub` checks the export's signature
   and every event of the chain. The script (< 100 lines, read it first) is in this pack; an
   installed modelcycle writes the same file with `modelcycle audit verify-script --out F`.
3. A bundle manifest's `bundle.sig` verifies against the bundle folder itself:
   `model_signing verify key BUNDLE --signature bundle.sig --public_key KEY.pub`.
"""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dump(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def build_pack(
    ws: Workspace,
    model: str,
    out: Path | str,
    *,
    since: str | None = None,
    sign: bool = False,
    key: str | None = None,
) -> dict[str, Any]:
    """Write the evidence pack of ``model`` to ``out`` (a zip); return its manifest."""
    signing_key = ws.keys.load(key) if sign else None  # fail before anything is written
    versions = ws.registry.list(model)
    if not versions:
        raise NotFound(f"no model named {model!r}")
    start = parse_since(since) if since else ""
    target = Path(out)
    members: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="modelcycle-pack-") as tmp:
        export = Path(tmp) / "audit.jsonl"
        ws.audit.export(export)
        members[_EXPORT] = export.read_bytes()
        if signing_key is not None:
            sig, _ = ws.keys.sign_export(export, signing_key.name)
            members[_EXPORT_SIG] = sig.read_bytes()
    events = [
        e
        for e in ws.audit.events()
        if e.at >= start
        and (e.subject == f"model:{model}" or e.subject.startswith(f"model:{model}/"))
    ]
    members["audit/index.json"] = _dump(
        [{"seq": e.seq, "at": e.at, "action": e.action, "subject": e.subject} for e in events]
    )
    holders = {v.version for v in versions if v.aliases}
    holders |= {
        int(e.payload["to"])
        for e in events
        if e.action == "model.alias_moved" and isinstance(e.payload.get("to"), int)
    }
    cards = []
    for version in sorted(holders):
        card = build_card(ws, f"{model}/{version}")
        members[f"cards/{model}-{version}.md"] = card_markdown(card).encode()
        members[f"cards/{model}-{version}.json"] = _dump(card)
        cards.append(f"{model}/{version}")
    drift = [r.as_dict() for r in ws.monitoring.history(model, limit=10000) if r.at >= start]
    members["drift/checks.json"] = _dump(drift)
    promotions = [
        {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "payload": e.payload}
        for e in events
        if e.action in ("model.promoted", "model.promotion_refused")
        or e.action.startswith("promotion.")
    ]
    members["promotions.json"] = _dump(promotions)
    bundles = 0
    for dep in ws.deploy.list(all=True):
        folder = Path(str(dep.details.get("bundle", "")))
        if dep.model_name != model or dep.created_at < start or not dep.details.get("bundle"):
            continue
        manifest = folder / "bundle.json"
        if manifest.is_file() and f"bundles/{dep.bundle_sha256}/bundle.json" not in members:
            members[f"bundles/{dep.bundle_sha256}/bundle.json"] = manifest.read_bytes()
            bundles += 1
            signature = folder.with_name(f"{folder.name}.sig")
            if signature.is_file():
                members[f"bundles/{dep.bundle_sha256}/bundle.sig"] = signature.read_bytes()
    head = ws.audit.head()
    members[_SCRIPT] = verify_script()
    members["README.md"] = _README.format(
        model=model, at=utc_timestamp(), actor=ws.actor, root=ws.root, since=start or "the start",
        head_seq=head.seq, head_hash=head.hash, n_events=len(events),
        cards=", ".join(cards) or "no version", n_drift=len(drift), n_gates=len(promotions),
        n_bundles=bundles,
    ).encode()  # fmt: skip
    digests = {name: _sha256(data) for name, data in sorted(members.items())}
    manifest_doc: dict[str, Any] = {
        "format": "modelcycle-evidence-pack/1",
        "model": model,
        "since": start or None,
        "head": {"seq": head.seq, "hash": head.hash},
        "members": digests,
    }
    members[_MANIFEST] = _dump(manifest_doc)
    if signing_key is not None:
        body = statement(
            [*digests.items(), (_MANIFEST, _sha256(members[_MANIFEST]))],
            PACK_PREDICATE,
            {"model": model, "head": manifest_doc["head"], "signer": signing_key.fingerprint},
        )
        members[_ENVELOPE] = _dump(sign_statement(body, signing_key))
        ws.keys.record_use(
            signing_key, purpose="evidence-pack", subject=model,
            sha256=_sha256(members[_MANIFEST]), out=str(target),
        )  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    partial.replace(target)
    return manifest_doc


def _read_members(path: Path) -> dict[str, bytes]:
    """Every member, checked for traversal and links, read into memory (never extracted)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"is not a zip file ({exc})", field=str(path)) from None
    members: dict[str, bytes] = {}
    with zf:
        for info in zf.infolist():
            name = info.filename
            parts = PurePosixPath(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
                raise InvalidInput(f"member {name!r} points outside the pack", field=str(path))
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(f"member {name!r} is a symbolic link", field=str(path))
            if info.is_dir():
                continue
            if name in members:
                raise InvalidInput(f"member {name!r} appears twice", field=str(path))
            members[name] = zf.read(info)
    return members


def verify_pack(path: Path | str, public_key: ec.EllipticCurvePublicKey) -> tuple[str | None, str]:
    """(first problem or None, summary): signature, members, then the signed audit export."""
    pack = Path(path)
    if not pack.is_file():
        raise NotFound(f"no evidence pack {pack}")
    members = _read_members(pack)
    if _ENVELOPE not in members:
        return f"{_ENVELOPE}: the pack is not signed", ""
    try:
        body = open_envelope(json.loads(members[_ENVELOPE]), public_key, PACK_PREDICATE)
    except (EnvelopeError, ValueError) as exc:
        return f"{_ENVELOPE}: {exc}", ""
    signed: dict[str, str] = {
        str(s.get("name")): str(s.get("digest", {}).get("sha256"))
        for s in body.get("subject", [])
        if isinstance(s, dict)
    }
    for name in sorted(set(signed) | set(members) - {_ENVELOPE}):
        if name not in members:
            return f"{name}: signed but missing from the pack", ""
        if name not in signed:
            return f"{name}: in the pack but not signed", ""
        if _sha256(members[name]) != signed[name]:
            return f"{name}: its sha256 differs from the signed one (replaced or changed)", ""
    if _EXPORT not in members or _EXPORT_SIG not in members:
        return f"{_EXPORT}: the signed audit export is missing", ""
    with tempfile.TemporaryDirectory(prefix="modelcycle-verify-") as tmp:
        export = Path(tmp) / "audit.jsonl"
        export.write_bytes(members[_EXPORT])
        Path(f"{export}.dsse.json").write_bytes(members[_EXPORT_SIG])
        report = verify_signed_export(export, public_key)
    if not report.ok:
        return f"{_EXPORT}: {report.reason}", ""
    assert report.chain is not None
    cards = sorted(n for n in members if n.startswith("cards/") and n.endswith(".md"))
    summary = (
        f"{len(members) - 1} member(s) match the signed manifest; audit export: "
        f"{report.chain.events} event(s), head {report.chain.head.seq}; cards: "
        f"{', '.join(c.removeprefix('cards/') for c in cards) or 'none'}"
    )
    return None, summary
