#!/usr/bin/env python3
"""Verify a signed modelcycle audit export without modelcycle: needs only `cryptography`.

    python3 verify_audit_export.py EXPORT.jsonl PUBLIC_KEY.pem [EXPORT.jsonl.dsse.json]

Checks the DSSE signature (ECDSA P-256, SHA-256) over the in-toto Statement, that the export's
sha256 is the signed one, every event's hash and link, and that the signed head ends the chain.
Exit 0 and "OK ..." when all holds, else exit 1 and "FAILED: <first reason>".
(`modelcycle audit verify-script --out FILE` writes this file; it imports nothing of modelcycle.)
"""

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pae(payload_type: str, payload: bytes) -> bytes:  # DSSE v1 Pre-Authentication Encoding
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def verify(export_path: str, key_path: str, sig_path: str) -> str | None:
    key = serialization.load_pem_public_key(Path(key_path).read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "the public key is not an elliptic-curve key"
    envelope = json.loads(Path(sig_path).read_text(encoding="utf-8"))
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        return "the envelope is not an in-toto DSSE envelope"
    payload = base64.b64decode(envelope["payload"])
    signed = pae(envelope["payloadType"], payload)
    for sig in envelope["signatures"]:
        try:
            key.verify(base64.b64decode(sig["sig"]), signed, ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        return "the signature does not verify with this public key"
    statement = json.loads(payload)
    if statement["predicateType"] != "https://modelcycle.dev/audit-export/v1":
        return "the statement is not about a modelcycle audit export"
    data = Path(export_path).read_bytes()
    if hashlib.sha256(data).hexdigest() != statement["subject"][0]["digest"]["sha256"]:
        return "the export is not the file that was signed (changed or truncated)"
    lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    if not lines or "format" not in lines[-1]:
        return "the export has no head line"
    prev_seq, prev_hash = 0, "0" * 64
    for line in lines[:-1]:
        e = line["event"]
        body = {k: e[k] for k in ("seq", "at", "actor", "action", "subject", "payload")}
        body["prev_hash"] = e["prev_hash"]
        if hashlib.sha256(canonical(body).encode("utf-8")).hexdigest() != e["hash"]:
            return f"event {e['seq']} altered: its content does not match its hash"
        if e["seq"] != prev_seq + 1 or e["prev_hash"] != prev_hash:
            return f"event {e['seq']} does not follow event {prev_seq} (missing or inserted)"
        prev_seq, prev_hash = e["seq"], e["hash"]
    head = statement["predicate"]["head"]
    if lines[-1]["head"] != head or head != {"seq": prev_seq, "hash": prev_hash}:
        return f"the signed head {head} is not the end of the chain (event {prev_seq})"
    signer, at = statement["predicate"]["signer"], statement["predicate"]["signed_at"]
    print(f"OK: {prev_seq} events, head {prev_hash}, signed {at} by {signer['actor']} "
          f"with key {signer['key']} ({signer['fingerprint']})")  # fmt: skip
    return None


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    signature = argv[2] if len(argv) == 3 else argv[0] + ".dsse.json"
    try:
        reason = verify(argv[0], argv[1], signature)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        reason = f"unreadable input ({type(exc).__name__}: {exc})"
    if reason:
        print(f"FAILED: {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
